"""Golden test of `surgery bench`: a tiny run of the A.4 protocol and its JSON contract, batches and threads."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from surgery.cli import app
from surgery.deploy import bench
from surgery.deploy.bench import available_cores, time_alternating
from surgery.deploy.machine import machine, vector_isa
from tests.tiny import recipe_data, write_recipe

runner = CliRunner()
TEACHER = "vit_tiny_patch16_224"


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
    assert (settings["runs"], settings["warmup"], settings["precision"], settings["opset"], settings["threads"]) == (3, 1, "fp32", 17, 1)
    assert {row["batch"] for row in report["rows"]} == {1}


@pytest.fixture(scope="module")
def batched(tmp_path_factory) -> tuple[dict, list[int]]:
    """`--batch 3 --batch 1 --threads all` as JSON, and the intra-op threads every ONNX Runtime session was made with."""
    recipe = write_recipe(tmp_path_factory.mktemp("batched"), recipe_data())
    threads, ort_session = [], bench.ort_session

    def spy(*args, **kwargs):
        session = ort_session(*args, **kwargs)
        threads.append(session.get_session_options().intra_op_num_threads)
        return session

    args = ["bench", str(recipe), "--img-size", "32", "--batch", "3", "--batch", "1", "--threads", "all", "--runs", "2", "--warmup", "0", "--json"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bench, "ort_session", spy)
        result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), threads


def test_each_batch_has_a_row_per_model_in_the_order_given(batched):
    report, _ = batched
    assert [(row["model"], row["img_size"], row["batch"]) for row in report["rows"]] == [
        (TEACHER, 32, 3), ("FAR", 32, 3), (TEACHER, 32, 1), ("FAR", 32, 1),
    ]
    assert all(row["onnx"]["median"] > 0 and row["eager"]["median"] > 0 for row in report["rows"])


def test_ratios_compare_within_the_same_batch(batched):
    report, _ = batched
    rows = {(row["model"], row["batch"]): row["onnx"]["median"] for row in report["rows"]}
    assert [(r["model"], r["img_size"], r["batch"]) for r in report["ratios"]] == [("FAR", 32, 3), ("FAR", 32, 1)]
    assert report["ratios"][0]["onnx"] == pytest.approx(rows[("FAR", 3)] / rows[(TEACHER, 3)])


def test_threads_all_reach_every_onnx_runtime_session(batched):
    report, made = batched
    assert report["settings"]["threads"] == available_cores()
    assert made == [available_cores()] * 4  # two models at two batches


def test_the_table_names_batch_threads_precision_and_the_cpu(tmp_path):
    recipe = write_recipe(tmp_path, recipe_data())
    args = ["bench", str(recipe), "--img-size", "32", "--batch", "2", "--runs", "1", "--warmup", "0", "--no-eager", "--precision", "int8"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    where = machine()
    assert "batch 2, 1 thread, int8" in " ".join(result.output.split())
    assert f"{where['cpu']}, {where['isa']}, ONNX Runtime {where['onnxruntime']}" in result.output
    assert re.search(rf"FAR/{TEACHER} at 32 px, batch 2: ONNX Runtime ×\d+\.\d\d", result.output)


@pytest.mark.parametrize("value", ["-1", "many", "1.5", str(available_cores() + 1)])
def test_a_thread_count_outside_the_cores_is_refused(tmp_path, value):
    result = runner.invoke(app, ["bench", str(write_recipe(tmp_path, recipe_data())), "--threads", value])
    assert result.exit_code == 2
    cores = available_cores()
    assert result.stderr.strip() == f"--threads {value}: give 1 to {cores} (the cores this process may use), or 0 / all for all of them"


def test_a_batch_below_one_is_refused(tmp_path):
    result = runner.invoke(app, ["bench", str(write_recipe(tmp_path, recipe_data())), "--batch", "0"])
    assert result.exit_code == 2 and "Invalid value for '--batch': Input should be greater than or equal to 1" in result.output


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
