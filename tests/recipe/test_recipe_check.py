"""Semantic checks: names that timm and the substitute registry must know, and files that must exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from surgery.errors import RecipeError
from surgery.recipe import Recipe, check_recipe, load_recipe

RECIPE = """\
name: tiny
model:
  name: deit_tiny_patch16_224
rewrites:
  - substitute: bilstm
    params: {heads: 3, hidden_size: auto, init: attention, bias: false}
"""


@pytest.fixture
def recipe_file(tmp_path: Path) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE, encoding="utf-8")
    return path


def problems_of(recipe: Recipe) -> list[str]:
    with pytest.raises(RecipeError) as caught:
        check_recipe(recipe)
    return [str(problem) for problem in caught.value.problems]


@pytest.mark.parametrize("name", ["deit_tiny_patch16_224", "deit_tiny_patch16_224.fb_in1k", "hf-hub:org/model"])
def test_known_names_pass(recipe_file: Path, name: str) -> None:
    check_recipe(load_recipe(recipe_file, [f"model.name={name}"]))


def test_unknown_model_suggests_close_names(recipe_file: Path) -> None:
    [problem] = problems_of(load_recipe(recipe_file, ["model.name=deit_tiny_patch16_22"]))
    assert problem.startswith("--set model.name=deit_tiny_patch16_22: model.name: unknown timm model")
    assert "did you mean 'deit_tiny_patch16_224'" in problem


def test_unknown_tagged_model_is_checked_without_its_tag(recipe_file: Path) -> None:
    [problem] = problems_of(load_recipe(recipe_file, ["model.name=deit_tiny_patch16_22.fb_in1k"]))
    assert "unknown timm model 'deit_tiny_patch16_22.fb_in1k' (did you mean 'deit_tiny_patch16_224'" in problem


def test_unknown_substitute_lists_registered_ones(recipe_file: Path) -> None:
    [problem] = problems_of(load_recipe(recipe_file, ["rewrites.0.substitute=bilstn", "rewrites.0.params={}"]))
    assert problem.startswith("--set rewrites.0.substitute=bilstn: rewrites.0.substitute: unknown substitute")
    assert "did you mean 'bilstm'" in problem and "known: " in problem


def test_unknown_param_lists_accepted_params(recipe_file: Path) -> None:
    [problem] = problems_of(load_recipe(recipe_file, ["rewrites.0.params.hiden_size=8"]))
    assert problem.startswith("--set rewrites.0.params.hiden_size=8: rewrites.0.params.hiden_size: bilstm takes")
    assert "(did you mean 'hidden_size'?); accepted: heads, hidden_size, init, bias" in problem


def test_missing_checkpoint_is_located(recipe_file: Path) -> None:
    text = RECIPE.replace("model:\n", "model:\n  checkpoint: absent.pt\n")
    recipe_file.write_text(text, encoding="utf-8")
    [problem] = problems_of(load_recipe(recipe_file))
    assert problem == f"{recipe_file}:3:3: model.checkpoint: no file at absent.pt"


def test_every_problem_is_reported(recipe_file: Path) -> None:
    overrides = ["model.name=nope_model", "rewrites.0.params.x=1", "rewrites.0.params.y=2"]
    assert len(problems_of(load_recipe(recipe_file, overrides))) == 3


JOINT = RECIPE + """\
stages:
  - kind: distill
    epochs: 1
    lr: 1.0e-3
"""


@pytest.mark.parametrize(
    ("given", "line", "message"),
    [
        ("    threshold: 0.5\n", 11, "stages.0.threshold: removes the units a Group-HS penalty has made small; set hoyer_weight > 0 as well"),
        ("    hoyer_weight: 1.0\n", 11, "stages.0.hoyer_weight: sparsifies units for a threshold to remove; set threshold as well"),
        ("    hoyer_weight: 0\n    threshold: 0.5\n", 12, "stages.0.threshold: removes the units a Group-HS penalty has made small"),
    ],
)
def test_a_distill_stage_prunes_with_both_hoyer_weight_and_threshold_or_neither(tmp_path: Path, given: str, line: int, message: str) -> None:
    path = tmp_path / "joint.yaml"
    path.write_text(JOINT + given, encoding="utf-8")
    [problem] = problems_of(load_recipe(path))
    assert problem.startswith(f"{path}:{line}:5: {message}")


def test_a_distill_stage_with_both_or_neither_passes(tmp_path: Path) -> None:
    path = tmp_path / "joint.yaml"
    for given in ("", "    hoyer_weight: 1.0\n    threshold: 0.5\n"):
        path.write_text(JOINT + given, encoding="utf-8")
        check_recipe(load_recipe(path))
