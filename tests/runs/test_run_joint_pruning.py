"""DeepHoyer jointly with block distillation (paper §3.3): a distill stage with a hoyer_weight and a threshold
prunes as a prune stage does, through the same removal, and a distill stage without them distills as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from far_modules import prunable_modules, unit_counts
from surgery.deploy.export import export_onnx
from surgery.recipe import recipe_from_data
from surgery.runs import RunDir, apply_recipe, load_run
from tests.tiny import recipe_data

pytestmark = pytest.mark.slow
HOYER_WEIGHT = 1e-2
UNITS = 8  # per head and direction: tests.tiny's digits model has 16-wide blocks of two heads


@pytest.fixture(scope="module")
def joint_run(tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    """The tiny digits run with its distill stage teacher-forced and pruning, a threshold no unit passes, then the
    recipe's own prune stage (which finds one unit per head and direction left to keep)."""
    data = recipe_data(trained=True)
    data["stages"][1].update(mode="teacher_forced", hoyer_weight=HOYER_WEIGHT, threshold=1.0e3)
    return apply_recipe(recipe_from_data(data), tmp_path_factory.mktemp("joint") / "run")


def steps_of(run: RunDir, stage: str) -> list[dict]:
    lines = (run.root / "metrics.jsonl").read_text().splitlines()
    return [entry for entry in map(json.loads, lines) if entry["kind"] == "step" and entry["stage"] == stage]


def test_joint_distillation_removes_the_units_under_its_threshold(joint_run: RunDir):
    report = json.loads(joint_run.report_json.read_text())
    rows = [row for site in report["pruning"]["by_site"].values() for row in site["units"]]
    assert len(rows) == 2 * 2 * 2  # blocks x heads x directions
    assert all(row["before"] == UNITS and row["after"] == 1 for row in rows)  # counted from before the first removal
    assert report["pruned"]["kept_fraction"] == pytest.approx(1 / UNITS)
    assert report["pruned"]["params"] < report["teacher"]["params"]
    assert [stage["kind"] for stage in report["stages"]] == ["fit", "distill", "evaluate", "prune", "finetune", "evaluate"]


def test_joint_distillation_logs_the_hoyer_sum_in_its_loss(joint_run: RunDir):
    steps = steps_of(joint_run, "1:distill")
    assert steps and all(step["hoyer"] > 0 for step in steps)
    for step in steps:
        assert step["loss"] == pytest.approx(step["sim"] + step["ce"] + HOYER_WEIGHT * step["hoyer"], rel=1e-5)


def test_the_shrunk_student_runs_and_exports(joint_run: RunDir, tmp_path: Path):
    student = load_run(joint_run.root).eval()
    assert [set(unit_counts(module).values()) for module in prunable_modules(student).values()] == [{1}, {1}]
    assert student(torch.randn(3, 1, 8, 8)).shape == (3, 10)
    exported = export_onnx(student, (1, 8, 8), tmp_path / "joint.onnx")
    assert exported.recurrent_nodes["LSTM"] == 2 * 2 * 2 and exported.max_abs_diff <= 1e-4


def test_distillation_without_a_hoyer_weight_is_unchanged(finished_run):
    steps = steps_of(finished_run.run, "1:distill")
    assert steps and all("hoyer" not in step for step in steps)
    assert all(step["loss"] == pytest.approx(step["sim"] + step["ce"], rel=1e-6) for step in steps)
