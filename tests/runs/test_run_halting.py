"""A halt stage end to end: the teacher learns to stop tokens, the student inherits the halting and distils from the
sparser teacher, a finished run comes back halting, and a transfer from it halts from the start."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from surgery import SurgeryError
from surgery.recipe import load_recipe, recipe_from_data
from surgery.rewrite.halting import halting_of
from surgery.runs import RunDir, apply_recipe, load_run
from surgery.runs.evaluate import evaluate_run
from surgery.runs.preflight import preflight
from tests.tiny import recipe_data, write_recipe

pytestmark = pytest.mark.slow
HALT = {
    "kind": "halt", "epochs": 2, "lr": 3.0e-3, "warmup_epochs": 0, "batch_size": 128,
    "ponder_weight": 0.05, "target_depth": 1, "gate_scale": 1.0, "gate_center": -4.6,
}


def halting_recipe() -> dict:
    data = recipe_data(trained=True)
    data["stages"] = [data["stages"][0], dict(HALT), {**data["stages"][1], "halting": "teacher"}, {"kind": "evaluate"}]
    return data


@pytest.fixture(scope="module")
def halting_run(tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    return apply_recipe(recipe_from_data(halting_recipe()), tmp_path_factory.mktemp("halt") / "run")


def test_the_halting_teacher_runs_fewer_tokens_and_the_dense_one_is_kept(halting_run: RunDir):
    report = json.loads(halting_run.report_json.read_text())
    assert 0 < report["teacher"]["tokens_run"] < 1
    assert "tokens_run" not in report["dense_teacher"] and "top1" in report["dense_teacher"]
    assert 0 < report["student"]["tokens_run"] <= 1
    assert [stage["kind"] for stage in report["stages"]] == ["fit", "halt", "distill", "evaluate"]
    steps = [json.loads(line) for line in (halting_run.root / "metrics.jsonl").read_text().splitlines()]
    halting = [step for step in steps if step["kind"] == "step" and step["stage"] == "1:halt"]
    assert halting and all(step["loss"] == pytest.approx(step["ce"] + 0.05 * step["ponder"] + 1e-3 * step["prior_kl"], rel=1e-5) for step in halting)


def test_a_finished_run_comes_back_halting(halting_run: RunDir):
    teacher, student = load_run(halting_run.root, "teacher"), load_run(halting_run.root)
    assert halting_of(teacher) is not None and halting_of(student) is not None
    images = torch.randn(4, 1, 8, 8)
    student(images)
    assert halting_of(student).trace.tokens_run.mean() < 1


def test_re_evaluating_a_halting_run_from_disk_gives_its_report(halting_run: RunDir):
    """The student's top-1 on its teacher's tokens, and the tokens each model runs, come back from disk as the run measured them."""
    report, again = json.loads(halting_run.report_json.read_text()), evaluate_run(halting_run)
    for key in ("top1", "tokens_run", "top1_on_teacher_tokens"):
        assert again["student"][key] == pytest.approx(report["student"][key])
    assert again["teacher"]["tokens_run"] == pytest.approx(report["teacher"]["tokens_run"])


def test_a_transfer_from_a_halting_run_halts_from_the_start(halting_run: RunDir, tmp_path: Path):
    data = recipe_data(trained=True)
    data["model"] = {"from_run": str(halting_run.root), "use": "teacher"}
    data["stages"] = [{"kind": "distill", "epochs": 1, "lr": 1e-3, "warmup_epochs": 0, "batch_size": 128}]
    recipe = load_recipe(write_recipe(tmp_path, data))
    assert recipe.model.halting is not None and recipe.model.halting.gate_center == -4.6


def test_halt_after_a_student_stage_is_refused_at_its_line(tmp_path: Path):
    data = halting_recipe()
    data["stages"] = [data["stages"][0], data["stages"][2], data["stages"][1]]
    recipe = load_recipe(write_recipe(tmp_path, data))
    with pytest.raises(SurgeryError, match=r"tiny.yaml:\d+:\d+: halt trains the teacher, so it comes before every distill stage"):
        preflight(recipe, None)


def test_a_target_depth_past_the_last_block_is_refused_at_its_line(tmp_path: Path):
    data = halting_recipe()
    data["stages"][1]["target_depth"] = 3  # tests.tiny's model has 2 blocks
    recipe = load_recipe(write_recipe(tmp_path, data))
    with pytest.raises(SurgeryError, match=r"tiny.yaml:\d+:\d+: 3 is past the model's last block \(2\)"):
        preflight(recipe, None)


def test_following_a_teacher_that_does_not_halt_is_refused_at_its_line(tmp_path: Path):
    data = recipe_data(trained=True)
    data["stages"][1]["halting"] = "teacher"
    recipe = load_recipe(write_recipe(tmp_path, data))
    with pytest.raises(SurgeryError, match=r"tiny.yaml:\d+:\d+: the student follows its teacher's halting, and this teacher does not halt"):
        preflight(recipe, None)


def test_halt_on_a_model_without_a_blocks_sequential_is_refused_at_its_line(tmp_path: Path):
    data = halting_recipe()
    data["model"] = {"name": "eva02_tiny_patch14_224", "kwargs": {"img_size": 8, "patch_size": 2, "in_chans": 1, "num_classes": 10, "depth": 1}}
    recipe = load_recipe(write_recipe(tmp_path, data))
    with pytest.raises(SurgeryError, match=r"tiny.yaml:\d+:\d+: token halting needs .* Eva's `blocks` is a ModuleList"):
        preflight(recipe, None)
