"""`model.from_run`: a recipe that starts from a finished run takes the run's model section, and for its student its rewrites.

Resolved when a recipe is read (after `--set`), so every command (validate, plan, cost,
apply) sees a whole recipe. A run's own `recipe.resolved.yaml` already names its model,
so reading it again touches no other run: a finished transfer stays replayable after
its source is gone. The weights themselves are `surgery apply`'s business.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from surgery.errors import Location, Problem, RecipeError
from surgery.recipe.stages import HaltingGate
from surgery.recipe.tree import Locations, deep_merge, relocate

RUN_RECIPE = "recipe.resolved.yaml"
"""The file in a run directory holding the recipe the run was made with."""
_WEIGHT_SOURCES = ("from_run", "made_by", "use", "pretrained", "checkpoint")
"""Model keys a transfer never inherits: the weights come from the run itself."""

ReadMapping = Callable[[Path], tuple[dict[str, Any], Locations]]


def resolve_from_run(data: dict[str, Any], locations: Locations, read: ReadMapping) -> None:
    """Fill in `data`'s model (and, for a student, rewrites) from the run `model.from_run` names, in place.

    The run's name, source, kwargs (num_classes left to this recipe's data), input_size and halting
    (its last halt stage's gate, when its teacher learnt to halt tokens) are inherited; keys this recipe writes win (a wrong one is refused when the weights are loaded).

    Raises:
        RecipeError: from_run names no run, or a student transfer also writes rewrites.
    """
    model = data.get("model")
    if not isinstance(model, dict) or model.get("from_run") is None or "name" in model:
        return
    place = locations.get(("model", "from_run"))
    source = _source_recipe(Path(str(model["from_run"])), model.get("made_by"), locations, read)
    inherited = {key: value for key, value in source.get("model", {}).items() if key not in _WEIGHT_SOURCES}
    inherited["kwargs"] = {key: value for key, value in (inherited.get("kwargs") or {}).items() if key != "num_classes"}
    halts = [stage for stage in source.get("stages") or [] if isinstance(stage, dict) and stage.get("kind") == "halt"]
    if halts:  # the source's teacher halts from its halt stage on; the model taken from it halts from the start
        inherited["halting"] = {key: halts[-1][key] for key in HaltingGate.model_fields if key in halts[-1]}
    data["model"] = deep_merge(inherited, model)
    for key in inherited:
        locations.setdefault(("model", key), place)
    if model.get("use", "student") == "student":
        _inherit_rewrites(data, locations, source.get("rewrites", []), model["from_run"], place)


def _source_recipe(run: Path, made_by: Any, locations: Locations, read: ReadMapping) -> dict[str, Any]:
    """The recipe of the run, or while there is no run yet, the recipe `made_by` names (which makes it)."""
    recipe = None if made_by is None else Path(str(made_by))
    if recipe is not None and not recipe.is_file():  # refused even beside a finished run: the recipe is wrong either way
        raise RecipeError([Problem(locations.get(("model", "made_by")), f"model.made_by: no recipe file at {recipe}")])
    if run.exists() or recipe is None:
        return _run_recipe(run, locations.get(("model", "from_run")), read)
    return read(recipe)[0]


def _run_recipe(run: Path, place: Location | None, read: ReadMapping) -> dict[str, Any]:
    if not run.is_dir():
        raise RecipeError([Problem(place, f"model.from_run: no run directory at {run} (name the recipe that makes it in model.made_by to check this one before)")])
    if not (run / RUN_RECIPE).is_file():
        raise RecipeError([Problem(place, f"model.from_run: {run} holds no run (no {RUN_RECIPE}); give a directory `surgery apply` wrote")])
    return read(run / RUN_RECIPE)[0]


def _inherit_rewrites(data: dict[str, Any], locations: Locations, rewrites: list[Any], run: Any, place: Location | None) -> None:
    """A student is already rewritten: its sites and pruned shapes are replayed from its run, so they cannot change."""
    if data.get("rewrites"):
        where = locations.get(("rewrites",), place)
        raise RecipeError([Problem(where, (
            f"rewrites: the student of {run} comes with that run's surgery (its sites and pruned shapes are replayed); "
            "drop rewrites, or start from its teacher (model.use: teacher) to rewrite it afresh"
        ))])
    data["rewrites"] = rewrites
    if place is not None:
        relocate(locations, ("rewrites",), rewrites, place)
