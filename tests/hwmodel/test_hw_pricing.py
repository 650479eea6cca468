"""Pricing formulas per op kind, the two product policies, and scheduling."""

from __future__ import annotations

import math

import pytest

from hwmodel import Cost, Elementwise, Gemm, Nonlinear, Op, Product, Recurrence, Workload, estimate, get_device, price
from hwmodel.pricing import Options

ISAAC = get_device("isaac")


def test_costs_add_repeat_and_copy():
    a, b = Cost(latency_s=1.0, analog_j=2.0, crossbars=3), Cost(latency_s=4.0, traffic_j=1.0, crossbars=1)
    assert (a + b).latency_s == 5.0 and (a + b).energy_j == 3.0 and (a + b).crossbars == 4
    assert a.repeat(3) == Cost(latency_s=3.0, analog_j=6.0, crossbars=3)
    assert a.side_by_side(3) == Cost(latency_s=1.0, analog_j=6.0, crossbars=9)


def test_adc_energy_is_counted_per_conversion_inside_the_analog_energy():
    cost = price(Gemm(rows=128, cols=128, vectors=1), ISAAC)
    conversions = 16 * 128 * 8  # 16 input slices, 128 values of 8 two-bit columns each, one row tile
    assert cost.adc_j == pytest.approx(conversions * 16 / 8 / 1.28 * 1e-12)  # one 2 mW ADC at 1.28 GS/s
    assert 0 < cost.adc_j < cost.analog_j
    assert price(Nonlinear(fn="gelu", elements=128), ISAAC).adc_j == 0

def test_doubling_the_sequence_doubles_lstm_latency():
    short, long = (price(Recurrence(input_size=64, hidden_size=64, steps=t), ISAAC) for t in (197, 394))
    assert long.latency_s == pytest.approx(2 * short.latency_s, rel=1e-12)
    assert long.crossbars == short.crossbars  # same weights, used for twice as many steps


def test_a_recurrent_step_is_one_read_of_the_stacked_weights():
    step = price(Recurrence(input_size=64, hidden_size=64, steps=1), ISAAC)
    mvm = 16 * 100e-9  # 16 input bits over 1-bit DACs, 100 ns cycles
    assert mvm < step.latency_s < 1.1 * mvm  # one read of [x_t; h_(t-1)], then the gates
    assert step.crossbars == 1 * 4 * 64 // 16  # 128 stacked rows fit one row tile; 256 gate columns of 16-bit weights
    separate = price(Gemm(rows=64, cols=256, vectors=1), ISAAC).analog_j * 2
    assert step.analog_j < 0.6 * separate  # half the conversions of two half-filled matrices


def test_doubling_the_sequence_quadruples_attention_products():
    short, long = (Product(m=n, k=64, n=n, batch=3) for n in (197, 394))
    for policy in ("write", "digital"):
        assert price(long, ISAAC, Options(policy)).macs == 4 * price(short, ISAAC, Options(policy)).macs
    digital = [price(p, ISAAC, Options("digital")).latency_s for p in (short, long)]
    assert digital[1] == pytest.approx(4 * digital[0], rel=1e-3)  # MAC lanes: time follows the work


def test_write_policy_programs_the_second_operand_every_inference():
    product = Product(m=197, k=64, n=197, batch=3)  # q k^T of DeiT-Tiny, 3 heads
    cost = price(product, ISAAC, Options("write"))
    cells = 64 * 197 * 8 * 3  # k x n values of 16 bits over 2-bit cells, per head
    assert cost.cell_writes == cells
    assert cost.write_j == pytest.approx(cells * 1.2e-12)
    assert cost.write_latency_s == pytest.approx(64 * 100e-9)  # 64 rows, one pulse each, heads in parallel
    assert cost.crossbars == 0 and cost.write_crossbars == 3 * math.ceil(197 / 16)


def test_digital_policy_runs_products_on_mac_lanes():
    product = Product(m=197, k=64, n=197, batch=3)
    cost = price(product, ISAAC, Options("digital"))
    lanes = 16 * 168
    assert cost.write_crossbars == 0 and cost.write_j == 0
    assert cost.latency_s == pytest.approx(math.ceil(product.macs / lanes) * 1e-9)
    assert cost.digital_j > product.macs * (ISAAC.digital.mul_pj + ISAAC.digital.add_pj) * 1e-12


def test_endurance_lifetime_under_each_policy():
    work = Workload((Gemm(rows=64, cols=197, vectors=197), Product(m=197, k=64, n=197, deps=(0,))))
    written = estimate(work, ISAAC, policy="write")
    assert written.lifetime_inferences == ISAAC.crossbar.endurance_writes
    assert written.lifetime_s == pytest.approx(written.lifetime_inferences * written.interval_s)
    verified = estimate(work, get_device("isaac", {"crossbar.write_verify_iterations": 10}), policy="write")
    assert verified.lifetime_inferences == ISAAC.crossbar.endurance_writes / 10
    assert estimate(work, ISAAC, policy="digital").lifetime_inferences == math.inf


def test_digital_policy_adds_the_mac_lanes_area_once():
    work = Workload((Product(m=8, k=8, n=8), Product(m=8, k=8, n=8)))
    digital, written = estimate(work, ISAAC, policy="digital"), estimate(work, ISAAC, policy="write")
    assert digital.area_mm2 == pytest.approx(16 * 168 * ISAAC.digital.mac_area_mm2)
    assert written.area_mm2 == pytest.approx(written.total.area_mm2) and written.area_mm2 > 0


def test_independent_ops_overlap_and_dependent_ones_chain():
    project = Gemm(rows=192, cols=192, vectors=10, path="blocks.0.proj")
    heads = tuple(Recurrence(input_size=64, hidden_size=64, steps=10, deps=(0,), path="blocks.0.lstm") for _ in range(6))
    work = Workload((project, *heads, Gemm(rows=384, cols=192, vectors=10, deps=tuple(range(1, 7)), path="blocks.0.out")))
    result = estimate(work, ISAAC)
    chain = result.ops[0].latency_s + result.ops[1].latency_s + result.ops[7].latency_s
    assert result.total.latency_s == pytest.approx(chain)
    assert chain < sum(c.latency_s for c in result.ops)  # the six recurrences overlap
    assert result.blocks["blocks.0"].latency_s == pytest.approx(chain)
    assert result.interval_s == max(c.latency_s for c in result.ops)


@pytest.mark.parametrize(
    "op", [Nonlinear(fn="softmax", elements=1000), Nonlinear(fn="gelu", elements=1000), Elementwise(fn="add", elements=1000)]
)
def test_digital_ops_cost_time_energy_and_traffic(op):
    cost = price(op, ISAAC)
    assert cost.latency_s > 0 and cost.digital_j > 0 and cost.traffic_j > 0
    assert cost.traffic_bytes == (op.in_elements + op.out_elements) * 2  # 16-bit activations


def test_bad_options_and_unknown_ops_are_refused():
    with pytest.raises(ValueError, match="policy"):
        Options(policy="analog")
    with pytest.raises(ValueError, match="replicas"):
        Options(replicas=0)
    with pytest.raises(KeyError, match="no pricing formula for Op"):
        price(Op(), ISAAC)
    with pytest.raises(ValueError, match="mac_lanes_per_tile"):
        price(Product(m=2, k=2, n=2), get_device("isaac", {"digital.mac_lanes_per_tile": 0}), Options("digital"))
