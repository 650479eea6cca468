"""The hardware section: overrides reach hwmodel's device, and a device it refuses is a located recipe problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from surgery.errors import RecipeError
from surgery.recipe import check_recipe, load_recipe, recipe_from_data
from surgery.recipe.hardware import resolve_hardware

DATA = {"name": "r", "model": {"name": "deit_tiny_patch16_224"}, "rewrites": [{}]}


def test_dotted_and_nested_overrides_both_reach_the_device():
    dotted = recipe_from_data({**DATA, "hardware": {"overrides": {"adc.bits": 6}}})
    nested = recipe_from_data(DATA, ["hardware.overrides.adc.bits=6", "hardware.gpu=h100"])
    assert resolve_hardware(dotted)[0].adc.bits == resolve_hardware(nested)[0].adc.bits == 6
    assert resolve_hardware(nested)[1].peak_tflops == 989


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("hardware.overrides.adc.bits=20", "hardware.overrides.adc.bits: expected less than or equal to 16, got 20"),
        ("hardware.overrides.crossbar.rows=-1", "hardware.overrides.crossbar.rows: expected greater than 0, got -1"),
        ("hardware.overrides.adc.bitz=4", "hardware.overrides.adc.bitz: not a field of the device"),
        ("hardware.preset=isac", "hardware.preset: unknown device preset 'isac'; did you mean 'isaac'?"),
        ("hardware.gpu=b200", "hardware.gpu: unknown GPU 'b200'"),
    ],
)
def test_check_refuses_a_bad_device_at_the_override(override, expected):
    with pytest.raises(RecipeError) as caught:
        check_recipe(recipe_from_data(DATA, [override]))
    [problem] = caught.value.problems
    assert str(problem).startswith(f"--set {override}: {expected}")


def test_a_bad_override_in_a_file_points_at_its_line(tmp_path: Path):
    path = tmp_path / "r.yaml"
    path.write_text("name: r\nmodel: {name: deit_tiny_patch16_224}\nrewrites: [{}]\nhardware:\n  overrides:\n    dac.bits: 0\n")
    with pytest.raises(RecipeError) as caught:
        check_recipe(load_recipe(path))
    assert str(caught.value) == f"{path}:5:3: hardware.overrides.dac.bits: expected greater than or equal to 1, got 0"


def test_a_bad_noise_override_points_at_its_line(tmp_path: Path):
    path = tmp_path / "r.yaml"
    path.write_text(
        "name: r\nmodel: {name: deit_tiny_patch16_224}\nrewrites: [{}]\nhardware:\n  overrides:\n"
        "    noise:\n      read_sigma: 0.01\n      programming_sigma: -0.05\n"
    )
    with pytest.raises(RecipeError) as caught:
        check_recipe(load_recipe(path))
    assert str(caught.value) == f"{path}:8:7: hardware.overrides.noise.programming_sigma: expected greater than or equal to 0, got -0.05"


def test_noise_overrides_reach_the_device_and_stuck_rates_are_checked_together():
    device, _ = resolve_hardware(recipe_from_data(DATA, ["hardware.overrides.noise.drift_nu=0.06"]))
    assert device.noise.drift_nu == 0.06 and device.noise.programming_sigma == 0.0
    with pytest.raises(RecipeError) as caught:
        check_recipe(recipe_from_data(DATA, ["hardware.overrides.noise.stuck_on_rate=0.6", "hardware.overrides.noise.stuck_off_rate=0.6"]))
    assert "stuck_on_rate=0.6 + stuck_off_rate=0.6 is more than all the cells" in str(caught.value)
