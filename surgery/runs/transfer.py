"""A run that starts from a finished one (`model.from_run`): downstream transfer, paper appendix A.3.

The source run's teacher and, with `use: student`, its student are rebuilt as `load_run`
rebuilds them (the timm model at the source's class count, the replayed surgery with its
pruned shapes, weights loaded strictly), then each classifier is reset to this recipe's
data with timm's `reset_classifier`. A student keeps its run's rewrites, so the loader copies
them and nothing can be rewritten on top (a second surgery would need a record the
format does not hold); a teacher is rewritten by this recipe, or by nothing at all, which
trains the attention model itself: the baseline of the same transfer. The teacher stays the
run's reference for fidelity; its new classifier is untrained, so no top-1 is reported for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from surgery.data import class_count
from surgery.errors import SurgeryError
from surgery.models import Device, input_size, recipe_model
from surgery.recipe import TEACHER_STAGES, Recipe, load_recipe
from surgery.rewrite.plan import Plan
from surgery.runs.halting import restore_halting
from surgery.runs.record import SurgeryRecord
from surgery.runs.replay import replay
from surgery.runs.rundir import RunDir
from surgery.train.checkpoint import load_weights_into, read_json

NEEDS_SITES = ("distill", "prune")
"""Stage kinds that train substitutes, so a transfer without rewrites cannot run them."""


@dataclass(frozen=True)
class Source:
    """The models a transfer starts from, heads reset, and what the report says about where they came from."""

    teacher: nn.Module
    student: nn.Module | None
    plan: Plan | None
    record: SurgeryRecord | None
    summary: dict[str, Any]
    """report.json's `transfer`: the source run, which model, its class count, the share of LSTM units it kept."""
    note: str
    """The classifier note of the run's console and report."""


def check_transfer(recipe: Recipe) -> str | None:
    """Pre-flight of a recipe with `model.from_run`: None without one, else the note on its classifier.

    Refuses, at the recipe line concerned: a directory that is not a finished run, a text encoder or a recipe
    without data (no classifier to reset), a student transfer whose model or rewrites differ from its run's or
    that fits a teacher, a stage that needs substitutes when nothing is rewritten, and weights that do not fit.
    """
    if recipe.model.from_run is None:
        return None
    run = finished_source(recipe)
    if recipe.model.source == "transformers" or recipe.data is None:
        why = "a text encoder has no classifier" if recipe.model.source == "transformers" else "the recipe has no data section"
        raise SurgeryError(f"{_where(recipe, ('model', 'from_run'))}: a transfer resets the classifier to the data's classes; {why}")
    if recipe.model.use == "student":
        _check_student_transfer(recipe, load_recipe(run.recipe), run)
    _check_sites(recipe)
    return load_source(recipe).note


def finished_source(recipe: Recipe) -> RunDir:
    """The run `model.from_run` names, refused (located) unless it finished: weights, record and recipe on disk."""
    assert recipe.model.from_run is not None, "only a transfer has a source run"
    run = RunDir(recipe.model.from_run)
    if not run.root.exists() and recipe.model.made_by is not None:
        raise SurgeryError(f"{_where(recipe, ('model', 'from_run'))}: no run at {run.root} yet; make it first: surgery apply {recipe.model.made_by} --out {run.root}")
    missing = [path.name for path in (run.recipe, run.teacher_weights, run.student_weights, run.record) if not path.is_file()]
    if missing:
        raise SurgeryError(
            f"{_where(recipe, ('model', 'from_run'))}: {run.root} is not a finished run (no {', '.join(missing)}); "
            "finish it first (`surgery apply RECIPE --resume`)"
        )
    return run


def load_source(recipe: Recipe, device: Device = "cpu") -> Source:
    """The source run's teacher (and student, for `use: student`) with weights, each head reset to the data's classes.

    Raises:
        SurgeryError: the run's weights do not fit the model this recipe describes (located at `model.from_run`).
    """
    run = finished_source(recipe)
    built = _at_source_classes(recipe, load_recipe(run.recipe))
    teacher = recipe_model(built, device)
    restore_halting(built, teacher, input_size(teacher, built.model.input_size), stages=0)
    student, surgery_plan, record = None, None, None
    try:
        load_weights_into(teacher, run.teacher_weights)
        if recipe.model.use == "student":
            record = SurgeryRecord.from_json(read_json(run.record, "a surgery record"), run.record)
            surgery_plan, student = replay(built, teacher, record, run.student_weights)
    except SurgeryError as error:
        raise SurgeryError(f"{_where(recipe, ('model', 'from_run'))}: the {recipe.model.use} of {run.root} does not fit this recipe's model: {error}") from error
    assert recipe.data is not None, "check_transfer refuses a transfer without data"
    classes = class_count(recipe.data)
    summary = _summary(recipe, run, getattr(teacher, "num_classes", None))
    for model in (teacher, student):
        if model is not None:
            model.reset_classifier(classes)
            model.to(device)  # timm builds the new classifier on the CPU
    return Source(teacher, student, surgery_plan, record, summary, _note(summary, classes))


def _at_source_classes(recipe: Recipe, source: Recipe) -> Recipe:
    """`recipe` whose model has the source's classifier, so the source's weights load strictly before the reset."""
    kwargs = {key: value for key, value in recipe.model.kwargs.items() if key != "num_classes"}
    if "num_classes" in source.model.kwargs:
        kwargs["num_classes"] = source.model.kwargs["num_classes"]
    return recipe.model_copy(update={"model": recipe.model.model_copy(update={"kwargs": kwargs})})


def _summary(recipe: Recipe, run: RunDir, classes: int | None) -> dict[str, Any]:
    report = read_json(run.report_json, "a run report") if run.report_json.is_file() else {}
    kept = report.get("pruning", {}).get("kept_fraction") if recipe.model.use == "student" else None
    return {"from_run": str(run.root), "use": recipe.model.use, "source_classes": classes, "kept_fraction": kept}


def _note(summary: dict[str, Any], classes: int) -> str:
    kept = summary["kept_fraction"]
    what = f"{summary['use']} (pruned: {kept:.1%} of its LSTM units kept)" if kept is not None else summary["use"]
    return f"the {what} of {summary['from_run']} ({summary['source_classes']} classes), its classifier reset to a new {classes}-class one"


def _check_student_transfer(recipe: Recipe, source: Recipe, run: RunDir) -> None:
    """A student is already rewritten (and maybe pruned): only its run's model and rewrites describe it."""
    if recipe.model.name != source.model.name:
        raise SurgeryError(f"{_where(recipe, ('model', 'name'))}: {recipe.model.name} is not the model of {run.root} ({source.model.name}); drop model.name")
    if recipe.rewrites != source.rewrites:
        raise SurgeryError(
            f"{_where(recipe, ('rewrites',))}: the student of {run.root} comes with that run's rewrites (its sites and pruned shapes "
            "are replayed); drop rewrites, or start from its teacher (model.use: teacher) to rewrite it afresh"
        )
    fit = next((index for index, stage in enumerate(recipe.stages) if stage.kind in TEACHER_STAGES), None)
    if fit is not None:
        kind = recipe.stages[fit].kind
        raise SurgeryError(
            f"{_where(recipe, ('stages', fit, 'kind'))}: {kind} trains the teacher before the rewrite, and the student of {run.root} "
            f"is rewritten already; finetune it, or {kind} its teacher (model.use: teacher)"
        )


def _check_sites(recipe: Recipe) -> None:
    """Without rewrites the model is trained as it is: a stage that trains or prunes substitutes has none to work on."""
    index = next((i for i, stage in enumerate(recipe.stages) if stage.kind in NEEDS_SITES), None)
    if not recipe.rewrites and index is not None:
        kind = recipe.stages[index].kind
        raise SurgeryError(f"{_where(recipe, ('stages', index, 'kind'))}: {kind} works on substitutes, and this recipe rewrites nothing")


def _where(recipe: Recipe, path: tuple[str | int, ...]) -> str:
    return str(recipe.location_of(path) or ".".join(map(str, path)))
