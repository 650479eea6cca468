"""`surgery bench` on a finished run: trained weights, int8 accuracy beside the latency, and Table 2's `--pruned-run`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from benchmarks import table2
from far_modules import unit_counts
from surgery.cli import app
from surgery.runs import load_run

pytestmark = pytest.mark.slow  # every test reads the session's finished run (tests/conftest.py)
runner = CliRunner()


@pytest.fixture
def run(finished_run) -> Path:
    """The directory of the session's finished run, to read only."""
    return finished_run.run.root


def bench_json(*args: str) -> dict:
    result = runner.invoke(app, ["bench", *args, "--img-size", "8", "--runs", "2", "--warmup", "0", "--no-eager", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_int8_bench_of_a_run_reports_each_models_top1_change(run):
    report = bench_json(str(run), "--precision", "int8")
    accuracy = {row["model"]: row for row in report["accuracy"]}
    assert set(accuracy) == {"vit_tiny_patch16_224", "FAR"}
    for row in accuracy.values():
        assert 0 <= row["int8_top1"] <= 100 and 0 <= row["fp32_top1"] <= 100
        assert row["change"] == pytest.approx(row["int8_top1"] - row["fp32_top1"])


def test_fp32_onnx_top1_of_a_run_matches_its_pytorch_evaluation(run):
    report = json.loads((run / "report.json").read_text())
    accuracy = {row["model"]: row for row in bench_json(str(run), "--precision", "int8")["accuracy"]}
    assert accuracy["FAR"]["fp32_top1"] == pytest.approx(report["pruned"]["top1"], abs=0.3)


def test_fp32_bench_of_a_run_measures_no_accuracy(run):
    assert bench_json(str(run))["accuracy"] == []


def test_run_option_takes_the_runs_trained_student(finished_run, run):
    rows = {row["model"]: row for row in bench_json(str(finished_run.recipe), "--run", str(run))["rows"]}
    student = load_run(run)
    assert rows["FAR"]["params"] == sum(p.numel() for p in student.parameters())


def test_keep_ratio_is_refused_with_a_run(run):
    result = runner.invoke(app, ["bench", str(run), "--img-size", "8", "--keep-ratio", "0.5"])
    assert result.exit_code == 2 and "brings its own shapes" in result.output


def test_table2_pruned_run_is_the_runs_student(run, monkeypatch):
    monkeypatch.setitem(table2.SCALES, "tiny", "vit_tiny_patch16_224")
    models = table2.scale_models("tiny", keep=0.7, pruned_run=run)
    pruned, trained = models["FAR-Tiny†"], load_run(run)
    assert list(models) == ["DeiT-Tiny", "FAR-Tiny", "FAR-Tiny†"]
    for name, module in trained.named_modules():
        if hasattr(module, "unit_groups"):
            assert unit_counts(pruned.get_submodule(name)) == unit_counts(module)
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(pruned(x), trained.eval()(x))


def test_table2_refuses_a_run_of_another_scale(run):
    with pytest.raises(SystemExit, match="started from vit_tiny_patch16_224, not deit_small_patch16_224"):
        table2.run_student(run, "deit_small_patch16_224")
