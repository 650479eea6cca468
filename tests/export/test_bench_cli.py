"""Golden test of `surgery bench`: a tiny run of the A.4 protocol and its JSON contract."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from surgery.cli import app
from surgery.deploy.bench import time_alternating, vector_isa
from tests.tiny import recipe_data, write_recipe

runner = CliRunner()


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    recipe = write_recipe(tmp_path_factory.mktemp("bench"), recipe_data())
    args = ["bench", str(recipe), "--img-size", "32", "--img-size", "48", "--runs", "3", "--warmup", "1", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_json_has_a_row_per_model_and_size_with_positive_timings(report):
    assert set(report) == {"settings", "machine", "unit", "rows", "ratios", "accuracy"}
    assert [(row["model"], row["img_size"]) for row in report["rows"]] == [
        ("vit_tiny_patch16_224", 32), ("FAR", 32), ("vit_tiny_patch16_224", 48), ("FAR", 48),
    ]
    for row in report["rows"]:
        assert row["params"] > 0 and row["macs"] > 0
        for timing in (row["onnx"], row["eager"]):
            assert 0 < timing["min"] <= timing["median"] <= timing["max"]


def test_ratios_compare_far_with_the_teacher_at_each_size(report):
    rows = {(row["model"], row["img_size"]): row for row in report["rows"]}
    assert [(r["model"], r["baseline"], r["img_size"]) for r in report["ratios"]] == [
        ("FAR", "vit_tiny_patch16_224", 32), ("FAR", "vit_tiny_patch16_224", 48),
    ]
    first = report["ratios"][0]
    assert first["onnx"] == pytest.approx(rows[("FAR", 32)]["onnx"]["median"] / rows[("vit_tiny_patch16_224", 32)]["onnx"]["median"])


def test_the_cpu_and_its_vector_isa_are_named(report):
    assert set(report["machine"]) == {"cpu", "isa", "onnxruntime"} and all(report["machine"].values())


def test_vector_isa_is_the_widest_with_its_int8_extensions():
    assert vector_isa({"sse4_2", "avx", "avx2", "avx_vnni"}) == "AVX2 (VNNI)"
    assert vector_isa({"fp", "asimd", "asimddp"}) == "NEON (dot product)"


def test_a_sequence_length_is_refused_for_an_image_model(tmp_path):
    result = runner.invoke(app, ["bench", str(write_recipe(tmp_path, recipe_data())), "--seq-len", "128"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "--seq-len: an image model is timed at image sizes; give --img-size PIXELS (default 224 and 384)"


def test_settings_follow_the_options(report):
    settings = report["settings"]
    assert (settings["runs"], settings["warmup"], settings["precision"], settings["opset"]) == (3, 1, "fp32", 17)


def test_models_alternate_and_warmup_is_untimed():
    calls: list[str] = []
    times = time_alternating({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, runs=3, warmup=2)
    assert calls == ["a", "b"] * 5
    assert [len(t) for t in times.values()] == [3, 3]


def test_int8_runs_both_models_of_the_comparison(tmp_path):
    recipe = write_recipe(tmp_path, recipe_data())
    args = ["bench", str(recipe), "--img-size", "32", "--runs", "1", "--warmup", "0", "--precision", "int8", "--no-eager", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["settings"]["precision"] == "int8" and [row["model"] for row in data["rows"]] == ["vit_tiny_patch16_224", "FAR"]
    assert all(row["eager"] is None for row in data["rows"])


def test_keep_ratio_benches_a_uniformly_shrunk_student(tmp_path, report):
    recipe = write_recipe(tmp_path, recipe_data())
    args = ["bench", str(recipe), "--img-size", "32", "--runs", "1", "--warmup", "0", "--no-eager", "--keep-ratio", "0.5", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    shrunk = {row["model"]: row for row in json.loads(result.stdout)["rows"]}
    full = {row["model"]: row for row in report["rows"] if row["img_size"] == 32}
    assert shrunk["vit_tiny_patch16_224"]["params"] == full["vit_tiny_patch16_224"]["params"]
    assert shrunk["FAR"]["params"] < full["FAR"]["params"] and shrunk["FAR"]["macs"] < full["FAR"]["macs"]


@pytest.mark.parametrize("ratio", ["0", "1.5"])
def test_keep_ratio_outside_the_unit_interval_is_refused(tmp_path, ratio):
    recipe = write_recipe(tmp_path, recipe_data())
    result = runner.invoke(app, ["bench", str(recipe), "--img-size", "32", "--keep-ratio", ratio])
    assert result.exit_code == 2
    assert "keep-ratio" in result.output
