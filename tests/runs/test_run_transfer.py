"""Downstream transfer (`model.from_run`): a recipe that starts from a finished run's teacher or (pruned) student.

The source is the session's tiny digits run (ten classes, pruned); the targets keep digits 5-9.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from surgery.errors import RecipeError, SurgeryError
from surgery.recipe import load_recipe
from surgery.runs import apply_recipe, load_run
from surgery.runs.evaluate import evaluate_run
from surgery.runs.preflight import preflight
from surgery.runs.transfer import load_source
from tests.tiny import write_recipe

SHIPPED = Path(__file__).parents[2] / "recipes" / "transfer_digits.yaml"
FINETUNE = {"kind": "finetune", "epochs": 1, "lr": 1.0e-3, "warmup_epochs": 0, "batch_size": 128}


def transfer(run: Path, **model: Any) -> dict[str, Any]:
    """A transfer of `run` to digits 5-9: one finetune epoch, then an evaluation."""
    return {
        "name": "transfer",
        "model": {"from_run": str(run), **model},
        "data": {"kind": "digits", "classes": [5, 6, 7, 8, 9]},
        "stages": [dict(FINETUNE), {"kind": "evaluate"}],
    }


def loaded(tmp_path: Path, data: dict[str, Any]):
    return load_recipe(write_recipe(tmp_path, data))


def line_of(path: Path, marker: str) -> int:
    """The first line of `path` that holds `marker`."""
    return next(number for number, text in enumerate(path.read_text().splitlines(), 1) if marker in text)


def head_free(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: tensor for name, tensor in state.items() if not name.startswith("head.")}


def test_a_student_takes_its_runs_model_and_rewrites_and_a_teacher_none(finished_run, tmp_path):
    source = load_recipe(finished_run.run.recipe)
    student = loaded(tmp_path, transfer(finished_run.run.root))
    teacher = loaded(tmp_path, transfer(finished_run.run.root, use="teacher"))
    assert student.model.name == teacher.model.name == source.model.name
    assert student.model.kwargs == {k: v for k, v in source.model.kwargs.items() if k != "num_classes"}
    assert student.rewrites == source.rewrites
    assert teacher.rewrites == []


def test_the_shipped_recipe_resolves_against_any_finished_run(finished_run):
    recipe = load_recipe(SHIPPED, [f"model.from_run={finished_run.run.root}"])
    checked = preflight(recipe, None)
    assert checked.recipe.model.kwargs["num_classes"] == 5
    assert "its classifier reset to a new 5-class one" in (checked.head or "")


def test_the_source_weights_load_with_a_new_head(finished_run, tmp_path):
    recipe = preflight(loaded(tmp_path, transfer(finished_run.run.root)), None).recipe
    source = load_source(recipe)
    original = load_run(finished_run.run.root)
    assert source.student.head.out_features == 5 and original.head.out_features == 10
    new, old = head_free(source.student.state_dict()), head_free(original.state_dict())
    assert new.keys() == old.keys() and all(torch.equal(new[name], old[name]) for name in new)
    assert source.summary == {**source.summary, "from_run": str(finished_run.run.root), "use": "student", "source_classes": 10}
    assert source.summary["kept_fraction"] is not None


@pytest.mark.parametrize(
    ("model", "extra", "marker", "message"),
    [
        ({}, {"rewrites": [{"substitute": "bigru"}]}, "rewrites:", "comes with that run's surgery"),
        ({"use": "teacher"}, {"stages": [{**FINETUNE, "kind": "prune", "hoyer_weight": 0.01, "threshold": 0.3}]}, "- {kind: prune", "prune works on substitutes"),
        ({}, {"stages": [{**FINETUNE, "kind": "fit"}]}, "- {kind: fit", "fit trains the teacher before the rewrite"),
        ({"kwargs": {"embed_dim": 32}}, {}, "from_run:", "does not fit this recipe's model"),
    ],
)
def test_a_transfer_that_cannot_work_is_refused_at_its_line(finished_run, tmp_path, model, extra, marker, message):
    path = write_recipe(tmp_path, {**transfer(finished_run.run.root, **model), **extra})
    with pytest.raises(SurgeryError, match=message) as error:
        preflight(load_recipe(path), None)
    assert str(error.value).startswith(f"{path}:{line_of(path, marker)}:")


def test_a_directory_without_a_run_is_refused_at_from_run(tmp_path):
    (tmp_path / "empty").mkdir()
    for run, message in ((tmp_path / "empty", "holds no run"), (tmp_path / "gone", "no run directory")):
        path = write_recipe(tmp_path, transfer(run))
        with pytest.raises(RecipeError, match=message) as error:
            load_recipe(path)
        assert str(error.value).startswith(f"{path}:{line_of(path, 'from_run')}:")


def test_a_run_not_made_yet_is_checked_against_the_recipe_that_makes_it_and_apply_waits_for_the_run(finished_run, tmp_path):
    source = tmp_path / "source.yaml"
    source.write_text(finished_run.run.recipe.read_text())
    recipe = loaded(tmp_path, transfer(tmp_path / "not_yet", made_by=str(source)))
    assert recipe.model.name == load_recipe(source).model.name
    assert recipe.rewrites == load_recipe(source).rewrites
    with pytest.raises(SurgeryError, match=rf"no run at {tmp_path / 'not_yet'} yet; make it first: surgery apply {source}"):
        preflight(recipe, None)


def test_made_by_is_refused_at_its_line_without_from_run_or_without_its_file(finished_run, tmp_path):
    path = write_recipe(tmp_path, transfer(tmp_path / "not_yet", made_by=str(tmp_path / "missing.yaml")))
    with pytest.raises(RecipeError, match="model.made_by: no recipe file at") as error:
        load_recipe(path)
    assert str(error.value).startswith(f"{path}:{line_of(path, 'made_by')}:")
    beside_a_run = write_recipe(tmp_path, transfer(finished_run.run.root, made_by=str(tmp_path / "missing.yaml")))
    with pytest.raises(RecipeError, match="model.made_by: no recipe file at"):
        load_recipe(beside_a_run)
    data = {"name": "t", "model": {"name": "vit_tiny_patch16_224", "made_by": "x.yaml"}, "rewrites": [{}]}
    with pytest.raises(RecipeError, match="made_by names the recipe that makes from_run"):
        loaded(tmp_path, data)


def test_an_unfinished_run_is_refused(finished_run, tmp_path):
    run = Path(shutil.copytree(finished_run.run.root, tmp_path / "run"))
    (run / "model.safetensors").unlink()
    with pytest.raises(SurgeryError, match=r"is not a finished run \(no model.safetensors\)"):
        preflight(loaded(tmp_path, transfer(run)), None)


@pytest.mark.slow
@pytest.mark.parametrize("use", ["student", "teacher"])
def test_a_transfer_trains_replays_and_reports_its_source(finished_run, tmp_path, use):
    out = apply_recipe(preflight(loaded(tmp_path, transfer(finished_run.run.root, use=use)), None).recipe, tmp_path / "out")
    report = json.loads(out.report_json.read_text())
    assert report["transfer"]["from_run"] == str(finished_run.run.root) and report["transfer"]["use"] == use
    assert "teacher" not in report and 0 <= report["student"]["top1"] <= 100
    assert "top1" not in evaluate_run(out)["teacher"]  # its classifier never saw this data
    rebuilt, source = load_run(out.root), load_run(finished_run.run.root, use)
    assert rebuilt.head.out_features == 5
    sites = json.loads(out.record.read_text())["sites"]
    if use == "student":  # the pruned shapes come along
        assert sites == json.loads(finished_run.run.record.read_text())["sites"]
    else:  # nothing rewritten: the attention model itself, trained
        assert sites == [] and type(rebuilt.blocks[0].attn) is type(source.blocks[0].attn)
    trained, before = head_free(rebuilt.state_dict()), head_free(source.state_dict())
    assert trained.keys() == before.keys() and any(not torch.equal(trained[name], before[name]) for name in trained)
