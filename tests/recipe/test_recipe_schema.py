"""The recipe schema: defaults, cross-field rules, the layer syntax, and the committed JSON Schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from surgery.errors import Location
from surgery.recipe import (
    DistillStage,
    EvaluateStage,
    ModelSpec,
    Recipe,
    Selector,
    parse_layers,
    recipe_json_schema,
    recipe_json_schema_text,
)

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "recipes" / "recipe.schema.json"
MINIMAL = {"name": "tiny", "model": {"name": "deit_tiny_patch16_224"}, "rewrites": [{}]}


def test_minimal_recipe_takes_the_documented_defaults() -> None:
    recipe = Recipe.model_validate(MINIMAL)
    assert recipe.rewrites[0].substitute == "bilstm"
    assert recipe.rewrites[0].select.path == "*"
    assert recipe.stages == [] and recipe.data is None
    assert (recipe.export.opset, recipe.hardware.preset) == (17, "isaac")


def test_recipe_is_frozen() -> None:
    with pytest.raises(ValidationError):
        Recipe.model_validate(MINIMAL).seed = 3


def test_rewrites_may_not_be_empty() -> None:
    with pytest.raises(ValidationError, match="rewrites"):
        Recipe.model_validate({**MINIMAL, "rewrites": []})


@pytest.mark.parametrize("name", ["with space", "slash/name", ""])
def test_run_name_must_be_a_folder_name(name: str) -> None:
    with pytest.raises(ValidationError, match="name"):
        Recipe.model_validate({**MINIMAL, "name": name})


def test_stages_are_chosen_by_kind() -> None:
    stages = [{"kind": "distill", "epochs": 2, "lr": 1e-3}, {"kind": "evaluate"}]
    recipe = Recipe.model_validate({**MINIMAL, "stages": stages})
    assert [type(stage) for stage in recipe.stages] == [DistillStage, EvaluateStage]
    assert recipe.stages[0].similarity == "mse" and recipe.stages[0].weight_decay == 0.05
    assert recipe.stages[1].metrics is None and recipe.stages[1].latency_lengths == [128, 256, 512]  # none: all the model kind has


def test_training_stage_needs_positive_epochs() -> None:
    with pytest.raises(ValidationError, match="epochs"):
        DistillStage(epochs=0, lr=1e-3)


def test_lr_base_batch_scales_only_the_peak_lr_linearly_with_the_batch() -> None:
    assert DistillStage(epochs=1, lr=5e-4).peak_lr == 5e-4
    stage = DistillStage(epochs=1, lr=5e-4, lr_base_batch=512, batch_size=256, warmup_lr=1e-5, min_lr=1e-6)
    assert stage.peak_lr == pytest.approx(2.5e-4) and (stage.warmup_lr, stage.min_lr) == (1e-5, 1e-6)
    assert DistillStage(epochs=1, lr=5e-4, lr_base_batch=512, batch_size=1024).peak_lr == pytest.approx(1e-3)


def test_pretrained_and_checkpoint_are_exclusive() -> None:
    with pytest.raises(ValidationError, match="mutually exclusive"):
        ModelSpec(name="deit_tiny_patch16_224", pretrained=True, checkpoint=Path("w.pt"))


def test_selector_class_is_written_as_class() -> None:
    selector = Selector.model_validate({"class": "Attention", "layers": "0-3"})
    assert selector.class_ == "Attention"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("0-2,5", {0, 1, 2, 5}), (" 3 ", {3}), ("1-1, 4-5", {1, 4, 5}), ([0, 7], {0, 7}), ([], set())],
)
def test_parse_layers(spec: str | list[int], expected: set[int]) -> None:
    assert parse_layers(spec) == expected


@pytest.mark.parametrize("spec", ["", "0-", "a", "1,,2", "3-1", "-1", [-1]])
def test_parse_layers_refuses_bad_syntax(spec: str | list[int]) -> None:
    with pytest.raises(ValueError):
        parse_layers(spec)


def test_selector_checks_layer_syntax_at_load() -> None:
    with pytest.raises(ValidationError, match="layer range"):
        Selector(layers="0-3,x")


def test_location_of_falls_back_to_nearest_recorded_parent() -> None:
    where = Location("r.yaml", 5, 3)
    recipe = Recipe.model_validate(MINIMAL, context={"locations": {("rewrites", 0): where}})
    assert recipe.location_of(("rewrites", 0, "params", "heads")) == where
    assert recipe.location_of(("model", "name")) is None


def test_field_docstrings_become_schema_descriptions() -> None:
    schema = recipe_json_schema()
    selector = schema["$defs"]["Selector"]
    assert "class" in selector["properties"] and "class_" not in selector["properties"]
    assert "last one wins" in selector["description"]
    assert schema["properties"]["rewrites"]["description"] == "Site replacements, applied in order."


def test_committed_json_schema_is_fresh() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == recipe_json_schema_text(), (
        "recipes/recipe.schema.json is stale; regenerate it with surgery.recipe.recipe_json_schema_text()"
    )
