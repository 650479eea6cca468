"""Recipes: the YAML a user writes, its schema, its loading with located errors, and its checks."""

from __future__ import annotations

from surgery.recipe.check import check_recipe
from surgery.recipe.data import Data, DigitsData, FolderData, SyntheticData, WikiData
from surgery.recipe.loader import apply_overrides, dump_recipe, load_recipe, recipe_from_data
from surgery.recipe.ranges import parse_layers
from surgery.recipe.schema import (
    ExportSpec,
    HardwareSpec,
    ModelSpec,
    Recipe,
    Rewrite,
    recipe_json_schema,
    recipe_json_schema_text,
)
from surgery.recipe.search import METRIC_UNITS, METRICS, Budget, Candidate, Limit, Metric, PredictorSpec, Search, Substitution
from surgery.recipe.selector import Selector, SparsityCriterion
from surgery.recipe.stages import (
    TEACHER_STAGES,
    DistillStage,
    EvaluateStage,
    FinetuneStage,
    FitStage,
    HaltingGate,
    HaltStage,
    KDSpec,
    PruneStage,
    Stage,
    TrainingNoise,
    TrainingStage,
)
from surgery.recipe.tree import KeyPath

__all__ = [
    "Budget",
    "Candidate",
    "Data",
    "DigitsData",
    "DistillStage",
    "EvaluateStage",
    "ExportSpec",
    "FinetuneStage",
    "FitStage",
    "HaltingGate",
    "HaltStage",
    "FolderData",
    "HardwareSpec",
    "KDSpec",
    "KeyPath",
    "Limit",
    "METRICS",
    "METRIC_UNITS",
    "Metric",
    "ModelSpec",
    "PredictorSpec",
    "PruneStage",
    "Recipe",
    "Rewrite",
    "Search",
    "Selector",
    "SparsityCriterion",
    "Stage",
    "Substitution",
    "TEACHER_STAGES",
    "SyntheticData",
    "TrainingNoise",
    "TrainingStage",
    "WikiData",
    "apply_overrides",
    "check_recipe",
    "dump_recipe",
    "load_recipe",
    "parse_layers",
    "recipe_from_data",
    "recipe_json_schema",
    "recipe_json_schema_text",
]

