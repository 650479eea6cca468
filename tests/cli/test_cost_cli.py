"""Golden tests of `surgery cost`: the JSON contract, options, refusals of bad devices, the plot, and `plan`'s cost."""

from __future__ import annotations

import json
import math

import pytest

from tests.cli.cli_helpers import invoke
from tests.tiny import recipe_data, write_recipe

SIZES = ("latency_s", "energy_j", "traffic_bytes", "area_mm2", "crossbars")


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> str:
    return str(write_recipe(tmp_path_factory.mktemp("cost"), recipe_data()))


@pytest.fixture(scope="module")
def priced(recipe) -> dict:
    result = invoke("cost", recipe, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_json_has_both_models_with_positive_finite_totals_and_block_rows(priced):
    assert (priced["device"], priced["policy"], priced["gpu"], priced["input_size"]) == ("isaac", "write", "a100", [3, 32, 32])
    for model in ("teacher", "student"):
        totals = priced[model]
        assert all(0 < totals[key] < math.inf for key in SIZES), totals
        assert 0 < totals["gpu"]["latency_s"] < math.inf and 0 < totals["gpu"]["energy_j"] < math.inf
        rows = {row["block"]: row for row in totals["blocks"]}
        assert all(0 < rows[block][key] < math.inf for block in ("blocks.0", "blocks.1") for key in SIZES)


def test_under_write_only_the_teacher_writes_crossbars(priced):
    assert priced["teacher"]["write_crossbars"] > 0 and priced["teacher"]["energy_by_component_j"]["write"] > 0
    assert priced["student"]["write_crossbars"] == 0 and priced["student"]["energy_by_component_j"]["write"] == 0
    assert all(row["write_crossbars"] == 0 for row in priced["student"]["blocks"])


def test_options_pick_policy_device_gpu_and_image_size(recipe, priced):
    args = ("--policy", "digital", "--device-preset", "neurosim", "--gpu", "h100", "--img-size", "64", "--json")
    result = invoke("cost", recipe, *args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["device"], data["policy"], data["gpu"], data["input_size"]) == ("neurosim", "digital", "h100", [3, 64, 64])
    assert data["teacher"]["write_crossbars"] == 0
    assert data["student"]["macs"] > 3 * priced["student"]["macs"]  # 65 tokens instead of 17


def test_a_timm_name_is_costed_with_bilstm_everywhere():
    result = invoke("cost", "vit_tiny_patch16_224", "--img-size", "32", "--set", "model.kwargs.depth=3", "--preset", "isaac", "--json")
    assert result.exit_code == 0, result.output
    student = json.loads(result.stdout)["student"]
    assert [row["block"] for row in student["blocks"] if row["block"].startswith("blocks.")] == ["blocks.0", "blocks.1", "blocks.2"]
    assert student["write_crossbars"] == 0


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("--set", "hardware.overrides.adc.bits=20"), "hardware.overrides.adc.bits"),
        (("--set", "hardware.overrides.crossbar.rows=-3"), "hardware.overrides.crossbar.rows"),
        (("--device-preset", "isac"), "hardware.preset"),
        (("--gpu", "b200"), "hardware.gpu"),
    ],
)
def test_a_bad_device_exits_2_naming_the_field(recipe, args, field):
    result = invoke("cost", recipe, *args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f": {field}: " in lines[0], lines
    assert lines[0].startswith("--set hardware.")


def test_the_table_and_the_energy_plot(recipe, tmp_path):
    plot = tmp_path / "energy.png"
    result = invoke("cost", recipe, "--plot", str(plot))
    assert result.exit_code == 0, result.output
    assert "blocks.1" in result.stdout and "a100 latency µs" in result.stdout and "ratio" in result.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plan_json_carries_the_cost_beside_its_old_keys(recipe, priced):
    result = invoke("plan", recipe, "--device", "meta", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert isinstance(data["teacher"]["macs"], int) and isinstance(data["student"]["params"], int) and data["sites"]
    assert data["cost"]["student"]["energy_j"] == pytest.approx(priced["student"]["energy_j"])
    assert invoke("plan", recipe, "--device", "meta").stdout.count("isaac crossbars, write policy") == 1
