"""Device presets, overrides, and refusal of bad configurations with the field named."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hwmodel import PRESETS, Device, get_device


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_validate_and_round_trip(name):
    device = get_device(name)
    assert device.name == name
    assert Device.model_validate(device.model_dump()) == device


def test_neurosim_preset_follows_neurosim_defaults():
    device = get_device("neurosim")
    assert (device.adc.bits, device.crossbar.read_latency_ns) == (5, 10.0)
    assert device.ima.adcs == device.ima.crossbars * device.crossbar.cols // 8  # 8 columns share an ADC
    assert (device.precision.weight_bits, device.precision.input_bits) == (8, 8)


def test_dotted_and_nested_overrides():
    device = get_device("isaac", {"adc.bits": 6, "crossbar": {"rows": 256}, "precision.input_bits": 8})
    assert (device.adc.bits, device.crossbar.rows, device.crossbar.cols, device.precision.input_bits) == (6, 256, 128, 8)


def test_devices_are_frozen():
    with pytest.raises(ValidationError, match="frozen"):
        get_device("isaac").crossbar.rows = 64


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"crossbar.rows": -128}, "crossbar.rows", "greater than 0"),
        ({"ima.crossbars": 0}, "ima.crossbars", "greater than 0"),
        ({"tile.buffer.area_mm2": -1.0}, "tile.buffer.area_mm2", "greater than or equal to 0"),
        ({"adc.bits": 17}, "adc.bits", "less than or equal to 16"),
        ({"dac.bits": 32}, "dac.bits", "less than or equal to 16"),
        ({"crossbar.rowz": 64}, "crossbar.rowz", "Extra inputs are not permitted"),
    ],
)
def test_bad_fields_are_refused_by_name(overrides, field, reason):
    with pytest.raises(ValidationError) as error:
        get_device("isaac", overrides)
    assert field in str(error.value) and reason in str(error.value)


def test_a_crossbar_smaller_than_one_weights_cells_is_refused():
    # 16-bit weights over 2-bit cells need 8 columns; a 4-column crossbar cannot hold one.
    with pytest.raises(ValidationError, match=r"crossbar\.cols=4 .*precision\.weight_bits=16"):
        get_device("isaac", {"crossbar.cols": 4})
    assert get_device("isaac", {"crossbar.cols": 8}).crossbar.cols == 8


def test_unknown_preset_suggests_a_close_name():
    with pytest.raises(KeyError, match="did you mean 'isaac'"):
        get_device("isac")
