"""Recipes: the YAML a user writes, its schema, its loading with located errors, and its checks."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from surgery.recipe.data import Data, DigitsData, FolderData, SyntheticData
from surgery.recipe.loader import apply_overrides, load_recipe
from surgery.recipe.ranges import parse_layers
from surgery.recipe.schema import (
    ExportSpec,
    HardwareSpec,
    ModelSpec,
    Recipe,
    Rewrite,
    Selector,
    recipe_json_schema,
    recipe_json_schema_text,
)
from surgery.recipe.stages import (
    DistillStage,
    EvaluateStage,
    FinetuneStage,
    FitStage,
    KDSpec,
    PruneStage,
    Stage,
    TrainingStage,
)
from surgery.recipe.tree import KeyPath

if TYPE_CHECKING:
    from surgery.recipe.check import check_recipe

__all__ = [
    "Data",
    "DigitsData",
    "DistillStage",
    "EvaluateStage",
    "ExportSpec",
    "FinetuneStage",
    "FitStage",
    "FolderData",
    "HardwareSpec",
    "KDSpec",
    "KeyPath",
    "ModelSpec",
    "PruneStage",
    "Recipe",
    "Rewrite",
    "Selector",
    "Stage",
    "SyntheticData",
    "TrainingStage",
    "apply_overrides",
    "check_recipe",
    "load_recipe",
    "parse_layers",
    "recipe_json_schema",
    "recipe_json_schema_text",
]


def __getattr__(name: str) -> Any:
    """Imports `check_recipe` on first use: it loads timm and torch (seconds), which reading recipes never needs."""
    if name == "check_recipe":
        return importlib.import_module("surgery.recipe.check").check_recipe
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
