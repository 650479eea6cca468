"""What a command's argument names: a finished run, a recipe file, or a timm model name.

Every command that takes such an argument asks here, so the three readings,
and the errors for an argument of the wrong kind, are written once. A directory
is a run, a `.yaml`/`.yml` path a recipe, anything else a timm model name,
which becomes a recipe replacing every attention with `bilstm`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from surgery.errors import SurgeryError
from surgery.recipe import Recipe, load_recipe, recipe_from_data
from surgery.runs import RunDir

Kind = Literal["run", "recipe", "model"]
RECIPE_SUFFIXES = (".yaml", ".yml")
_NAMES: dict[Kind, str] = {"run": "a run directory", "recipe": "a recipe file", "model": "a timm model name"}


@dataclass(frozen=True)
class Target:
    """A resolved argument: its recipe (a run's resolved recipe for a run) and, for a run, its directory."""

    text: str
    kind: Kind
    recipe: Recipe
    run: RunDir | None = None


def resolve_target(text: str, overrides: Sequence[str] = (), accepts: Collection[Kind] = ("run", "recipe", "model")) -> Target:
    """Read `text` as a run, a recipe or a timm model name, with `--set` `overrides` applied to recipes.

    Raises:
        SurgeryError: `text` is of a kind the command does not take, a run directory holds no run,
            or `overrides` are given for a finished run.

    Example:
        >>> resolve_target("deit_tiny_patch16_224").recipe.rewrites[0].substitute
        'bilstm'
    """
    kind = kind_of(text)
    if kind not in accepts:
        expected = " or ".join(_NAMES[k] for k in accepts)
        found = {"run": "a directory", "recipe": "a file", "model": "no such directory or file"}[kind]
        raise SurgeryError(f"{text}: expected {expected}; found {found}")
    if kind == "run":
        return Target(text, kind, _run_recipe(text, overrides), RunDir(Path(text)))
    if kind == "recipe":
        return Target(text, kind, load_recipe(text, overrides))
    data = {"name": re.sub(r"[^A-Za-z0-9_.-]", "_", text), "model": {"name": text}, "rewrites": [{"substitute": "bilstm"}]}
    return Target(text, kind, recipe_from_data(data, overrides))


def kind_of(text: str) -> Kind:
    path = Path(text)
    if path.is_dir():
        return "run"
    return "recipe" if path.is_file() or path.suffix in RECIPE_SUFFIXES else "model"


def _run_recipe(text: str, overrides: Sequence[str]) -> Recipe:
    run = RunDir(Path(text))
    if overrides:
        raise SurgeryError(f"{text}: --set changes recipes, not finished runs")
    if not run.recipe.exists():
        raise SurgeryError(f"{text}: no run here (missing {run.recipe.name})")
    return load_recipe(run.recipe)
