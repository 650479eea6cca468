"""Semantic checks of a validated recipe that need no model built: names timm and the registry must know.

A transformers model's name (a directory, a hub id or the packaged alias) is checked when it is built.
"""

from __future__ import annotations

from collections.abc import Iterator

import timm

import far_modules
from far_modules.registry import UnknownNameError
from surgery.errors import Problem, RecipeError
from surgery.recipe.hardware import hardware_problems
from surgery.recipe.problems import did_you_mean
from surgery.recipe.schema import Recipe, Rewrite


def check_recipe(recipe: Recipe) -> None:
    """Refuses a recipe naming an unknown timm model, substitute or option, a missing checkpoint, or a bad device.

    Raises:
        RecipeError: every problem found, each at the place in the file it concerns.

    Example:
        >>> check_recipe(load_recipe("recipes/quickstart.yaml"))  # doctest: +SKIP
    """
    problems = [*_model_problems(recipe)]
    for index, rewrite in enumerate(recipe.rewrites):
        problems += _rewrite_problems(recipe, index, rewrite)
    problems += hardware_problems(recipe)
    if problems:
        raise RecipeError(problems)


def _model_problems(recipe: Recipe) -> Iterator[Problem]:
    spec = recipe.model
    if spec.source == "timm" and not _is_timm_model(spec.name):
        architecture = spec.name.split(".", 1)[0]
        hint = did_you_mean(architecture, timm.list_models()) or "; see timm.list_models()"
        yield Problem(recipe.location_of(("model", "name")), f"model.name: unknown timm model {spec.name!r}{hint}")
    if spec.source == "transformers" and recipe.data is not None:
        message = f"data: {recipe.data.kind} data are images; a transformers model reads token ids, and no text data kind exists yet"
        yield Problem(recipe.location_of(("data", "kind")), message)
    if spec.checkpoint is not None and not spec.checkpoint.is_file():
        yield Problem(recipe.location_of(("model", "checkpoint")), f"model.checkpoint: no file at {spec.checkpoint}")


def _is_timm_model(name: str) -> bool:
    """A timm architecture, with or without a pretrained tag; "hf-hub:" style sources are checked when built."""
    return ":" in name or timm.is_model(name.split(".", 1)[0])


def _rewrite_problems(recipe: Recipe, index: int, rewrite: Rewrite) -> Iterator[Problem]:
    try:
        options = far_modules.substitute_options(rewrite.substitute)
    except UnknownNameError as error:
        yield Problem(recipe.location_of(("rewrites", index, "substitute")), f"rewrites.{index}.substitute: {error}")
        return
    for key in rewrite.params:
        if key not in options:
            place = recipe.location_of(("rewrites", index, "params", key))
            yield Problem(place, _unknown_option(rewrite, index, key, options))


def _unknown_option(rewrite: Rewrite, index: int, key: str, options: dict[str, object]) -> str:
    accepted = ", ".join(options) or "none"
    hint = did_you_mean(key, list(options))
    return f"rewrites.{index}.params.{key}: {rewrite.substitute} takes no option {key!r}{hint}; accepted: {accepted}"
