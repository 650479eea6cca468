"""ISAAC's published totals, recomputed from its per-component parameters (hwmodel-anchors.md §1)."""

from __future__ import annotations

import pytest

from hwmodel import chip_budget, get_device, ima_budget, peak_ops_per_s, tile_budget
from hwmodel.actions import adc_pj, dac_pj, read_energy, shift_add_pj
from hwmodel.budget import Budget, cycle_ns, part
from hwmodel.mapping import tile_matrix
from hwmodel.pricing import program

ISAAC = get_device("isaac")


def _twelve_imas(device):
    return ima_budget(device) * device.tile.imas


def _all_tiles(device):
    return tile_budget(device) * device.chip.tiles


# (what, computed budget, published power in mW, published area in mm²) — ISAAC, ISCA 2016, Table 1.
TARGETS = [
    ("IMA", ima_budget, 24.08, 0.0131),
    ("12 IMAs", _twelve_imas, 289.0, 0.157),
    ("tile", tile_budget, 330.0, 0.372),
    ("168 tiles", _all_tiles, 55.4e3, 62.5),
    ("chip", chip_budget, 65.8e3, 85.4),
]


@pytest.mark.parametrize(("what", "budget", "power_mw", "area_mm2"), TARGETS, ids=[t[0] for t in TARGETS])
def test_isaac_power_and_area_within_two_percent(what, budget, power_mw, area_mm2):
    computed = budget(ISAAC)
    assert computed.power_mw == pytest.approx(power_mw, rel=0.02)
    assert computed.area_mm2 == pytest.approx(area_mm2, rel=0.02)


def test_isaac_peak_throughput_and_efficiency():
    ops = peak_ops_per_s(ISAAC)
    chip = chip_budget(ISAAC)
    assert ops / 1e12 == pytest.approx(41.3, rel=0.02)
    assert ops / (chip.power_mw * 1e-3) / 1e9 == pytest.approx(627, rel=0.02)
    assert ops / chip.area_mm2 / 1e9 == pytest.approx(483, rel=0.02)


def test_columns_are_converted_at_the_crossbar_rate():
    # 8 crossbars x 128 columns per 100 ns = 10.24 G conversions/s = 8 ADCs x 1.28 GS/s.
    assert cycle_ns(ISAAC) == pytest.approx(100.0)
    assert ISAAC.ima.adcs * ISAAC.adc.rate_gsps == pytest.approx(8 * 128 / 100)


def test_a_fully_busy_ima_dissipates_its_published_power():
    """Per-action energies are power / rate, so one cycle of a full IMA costs IMA power x cycle."""
    xbar, ima = ISAAC.crossbar, ISAAC.ima
    rows, columns = ima.crossbars * xbar.rows, ima.crossbars * xbar.cols
    cycle_pj = read_energy(ISAAC).of(rows, rows * xbar.cols, columns)
    assert cycle_pj == pytest.approx(ima_budget(ISAAC).power_mw * cycle_ns(ISAAC))


def test_actions_match_hwcomponents_library_at_its_adc_rate():
    """hwcomponents-library's isaac.py derives ADC 1.67, DAC 0.417 and shift-add 0.021 pJ at 1.2 GS/s."""
    slower = get_device("isaac", {"adc.rate_gsps": 1.2, "crossbar.read_latency_ns": 128 / 1.2})
    assert adc_pj(slower) == pytest.approx(1.666666667, rel=1e-6)
    assert dac_pj(slower) == pytest.approx(0.41667, rel=1e-4)
    assert shift_add_pj(slower) == pytest.approx(0.021, rel=0.02)
    assert adc_pj(ISAAC) == pytest.approx(1.5625)  # what we use: ISAAC's own 1.28 GS/s


def test_reprogramming_one_array_matches_the_puma_order_of_magnitude():
    """Anchor §2: a whole 128 x 128 reprogram takes about 10 us and 20 nJ."""
    array = tile_matrix(128, 64, ISAAC, bits=4)  # 64 values x 2 cells = 128 columns: one full array
    assert array.crossbars == 1 and array.cells == 128 * 128
    cost = program(array, ISAAC)
    assert 5e-6 < cost.write_latency_s < 20e-6
    assert 10e-9 < cost.write_j < 40e-9


def test_budgets_add_and_scale():
    one = part(ISAAC.tile.sigmoid)
    assert one == Budget(0.52, 0.0006)
    assert (one + one) * 0.5 == one
