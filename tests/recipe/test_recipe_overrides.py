"""`--set` overrides: key paths, YAML values, precedence, and errors that point at the override."""

from __future__ import annotations

from pathlib import Path

import pytest

from surgery.errors import Location, RecipeError
from surgery.recipe import load_recipe
from surgery.recipe.overrides import parse_override

RECIPE = """\
name: tiny
model:
  name: deit_tiny_patch16_224
rewrites:
  - params: {heads: 3}
stages:
  - {kind: distill, epochs: 1, lr: 0.1}
  - {kind: finetune, epochs: 1, lr: 0.1}
"""


@pytest.fixture
def recipe_file(tmp_path: Path) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE, encoding="utf-8")
    return path


def problems_of(path: Path, *overrides: str) -> list[str]:
    with pytest.raises(RecipeError) as caught:
        load_recipe(path, overrides)
    return [str(problem) for problem in caught.value.problems]


def test_parse_override_splits_key_and_value() -> None:
    override = parse_override("stages.1.lr=a=b")
    assert (override.keys, override.value_text) == (("stages", "1", "lr"), "a=b")
    assert override.location == Location("--set stages.1.lr=a=b", 0, 0)


@pytest.mark.parametrize("text", ["stages.1.lr", "=3", "stages..lr=3", "stages.=1"])
def test_parse_override_refuses_malformed_text(text: str) -> None:
    with pytest.raises(RecipeError, match="expected dotted.key=value"):
        parse_override(text)


def test_set_nested_key_list_item_and_new_key(recipe_file: Path) -> None:
    overrides = ["model.kwargs.img_size=32", "rewrites.0.params.init=attention", "stages.1.lr=3e-4"]
    recipe = load_recipe(recipe_file, overrides)
    assert recipe.model.kwargs == {"img_size": 32}
    assert recipe.rewrites[0].params == {"heads": 3, "init": "attention"}
    assert recipe.stages[1].lr == 3e-4 and isinstance(recipe.stages[1].lr, float)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("=[1, 2]", [1, 2]), ("=true", True), ("=1e-6", 1e-6), ("={a: 1}", {"a": 1}), ("=", None), ("=auto", "auto"), ("=*", "*"), ("=*.attn", "*.attn"), ("=&x", "&x")],
)
def test_values_are_read_as_yaml(recipe_file: Path, text: str, expected: object) -> None:
    assert load_recipe(recipe_file, ["model.kwargs.x" + text]).model.kwargs["x"] == expected


def test_later_overrides_win(recipe_file: Path) -> None:
    assert load_recipe(recipe_file, ["seed=1", "seed=2"]).seed == 2


def test_override_replaces_whole_subtree_and_its_locations(recipe_file: Path) -> None:
    recipe = load_recipe(recipe_file, ["rewrites.0.params={hidden_size: 8}"])
    assert recipe.rewrites[0].params == {"hidden_size": 8}
    place = Location("--set rewrites.0.params={hidden_size: 8}", 0, 0)
    assert recipe.location_of(("rewrites", 0, "params", "hidden_size")) == place
    assert recipe.location_of(("rewrites", 0)) == Location(str(recipe_file), 5, 5)


def test_index_out_of_range_is_refused(recipe_file: Path) -> None:
    assert problems_of(recipe_file, "stages.2.lr=1") == [
        "--set stages.2.lr=1: no item '2' in stages: expected an index below its length, 2"
    ]


def test_key_into_a_list_or_scalar_is_refused(recipe_file: Path) -> None:
    problems = problems_of(recipe_file, "stages.first.lr=1", "name.value=1")
    assert "no item 'first' in stages" in problems[0]
    assert problems[1] == "--set name.value=1: cannot set 'value' inside name, which is 'tiny'"


def test_invalid_value_points_at_the_override(recipe_file: Path) -> None:
    assert problems_of(recipe_file, "stages.0.lr=fast") == [
        "--set stages.0.lr=fast: stages.0.lr: "
        "expected a valid number, unable to parse string as a number, got 'fast'"
    ]


def test_yaml_error_in_a_value_points_at_the_override(recipe_file: Path) -> None:
    [problem] = problems_of(recipe_file, "model.kwargs=[1")
    assert problem.startswith("--set model.kwargs=[1:1:3: invalid YAML")
