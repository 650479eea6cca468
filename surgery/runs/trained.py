"""What export and bench work on, from a finished run or a recipe: a teacher and its student as `deploy.Models`."""

from __future__ import annotations

from surgery.deploy.export import Models, models_from_recipe
from surgery.models import input_size
from surgery.recipe import load_recipe
from surgery.runs.replay import load_run
from surgery.runs.rundir import RunDir
from surgery.targets import Target


def load_models(target: Target) -> Models:
    """A run's trained models, or a recipe's (or timm name's) planned ones with random weights."""
    return models_from_run(target.run) if target.run is not None else models_from_recipe(target.recipe)


def models_from_run(run: RunDir) -> Models:
    """A finished run's trained teacher and student, rebuilt from disk."""
    recipe = load_recipe(run.recipe)
    student = load_run(run.root)
    size = input_size(student, recipe.model.input_size)
    return Models(recipe.model.name, load_run(run.root, "teacher").eval(), student, size, recipe.export)
