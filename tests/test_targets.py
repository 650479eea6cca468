"""The one reading of a command's argument: run directory, recipe file or timm model name."""

from __future__ import annotations

import pytest

from surgery import SurgeryError
from surgery.recipe import dump_recipe
from surgery.targets import resolve_target
from tests.tiny import recipe_data, to_yaml, write_recipe


def _conv_recipe() -> dict:
    data = recipe_data()
    data["rewrites"][0]["substitute"] = "conv"
    return data


@pytest.fixture
def recipe_file(tmp_path):
    return write_recipe(tmp_path, _conv_recipe())


@pytest.fixture
def run_dir(tmp_path, recipe_file):
    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.resolved.yaml").write_text(dump_recipe(resolve_target(str(recipe_file)).recipe))
    return run


def test_a_timm_name_becomes_a_recipe_replacing_every_attention_with_bilstm():
    target = resolve_target("hf-hub:timm/vit_tiny_patch16_224", ["model.kwargs.depth=2"])
    assert (target.kind, target.run) == ("model", None)
    assert target.recipe.model.name == "hf-hub:timm/vit_tiny_patch16_224"
    assert target.recipe.model.kwargs == {"depth": 2}
    assert [r.substitute for r in target.recipe.rewrites] == ["bilstm"]
    assert target.recipe.name == "hf-hub_timm_vit_tiny_patch16_224"


def test_a_recipe_file_is_loaded_with_the_overrides(recipe_file):
    target = resolve_target(str(recipe_file), ["rewrites.0.substitute=bilstm"])
    assert target.kind == "recipe" and target.recipe.rewrites[0].substitute == "bilstm"


def test_a_file_without_a_yaml_suffix_is_still_a_recipe(tmp_path):
    path = tmp_path / "recipe.txt"
    path.write_text(to_yaml(_conv_recipe()))
    assert resolve_target(str(path), accepts=("recipe",)).recipe.name == "tiny"


def test_a_run_directory_brings_its_resolved_recipe(run_dir):
    target = resolve_target(str(run_dir))
    assert target.kind == "run" and target.run.root == run_dir
    assert target.recipe.rewrites[0].substitute == "conv"


def test_a_finished_run_takes_no_overrides(run_dir):
    with pytest.raises(SurgeryError, match="--set changes recipes, not finished runs"):
        resolve_target(str(run_dir), ["seed=1"])


def test_a_directory_without_a_run_is_refused(tmp_path):
    with pytest.raises(SurgeryError, match=r"no run here \(missing recipe.resolved.yaml\)"):
        resolve_target(str(tmp_path))


@pytest.mark.parametrize(
    ("text", "accepts", "message"),
    [
        ("deit_tiny_patch16_224", ("run",), "expected a run directory; found no such directory or file"),
        ("{recipe}", ("run",), "expected a run directory; found a file"),
        ("{tmp}", ("recipe", "model"), "expected a recipe file or a timm model name; found a directory"),
    ],
)
def test_an_argument_of_the_wrong_kind_says_what_was_expected_and_found(tmp_path, recipe_file, text, accepts, message):
    with pytest.raises(SurgeryError, match=message):
        resolve_target(text.format(recipe=recipe_file, tmp=tmp_path), accepts=accepts)
