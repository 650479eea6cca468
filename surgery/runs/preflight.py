"""Pre-flight: everything `surgery apply` can check before it writes a file or trains a step, in one place.

The recipe and its registries, the stage order, the data folders, the
classifier against the data's classes (from a finished run: the run, and its
weights against the recipe's model), every training stage's batch against
the training split, the plan (sites, selection, substitute options) on the
meta device, a prunable substitute for a prune stage, and the output
directory. `surgery apply --dry-run` runs only
this and prints what it checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from far_modules import Prunable, get_substitute, substitute_names
from surgery.data import check_folders, per_rank_batch, train_size
from surgery.errors import FieldError, SurgeryError
from surgery.models import input_size, recipe_model, sequence_length, takes_tokens
from surgery.recipe import DistillStage, EvaluateStage, FolderData, HaltStage, Recipe, Stage, TrainingStage, WikiData, check_recipe
from surgery.recipe.check import refuse_search
from surgery.rewrite.plan import plan
from surgery.runs.halting import halting_gate, restore_halting
from surgery.runs.head import fit_head
from surgery.runs.rundir import check_run_dir
from surgery.runs.transfer import check_transfer


@dataclass(frozen=True)
class Preflight:
    """The recipe a run will use (its head fitted to the data), the note on that head, and what was checked."""

    recipe: Recipe
    head: str | None
    checked: list[str] = field(default_factory=list)


def preflight(recipe: Recipe, out: Path | None, *, resume: bool = False, force: bool = False, world_size: int = 1) -> Preflight:
    """Check everything checkable without training; the first problem found is raised as a `SurgeryError`.

    `out` is None where another process owns the run directory (torchrun ranks other than 0).
    """
    checked = []
    check_recipe(recipe)
    refuse_search(recipe, "apply")
    check_stage_order(recipe)
    checked.append(f"recipe {recipe.name!r}: schema, registries, substitute options, {len(recipe.stages)} stages in a valid order")
    if any(isinstance(stage, TrainingStage) for stage in recipe.stages):
        checked.append(describe_learning_rates(recipe))
    if isinstance(recipe.data, FolderData):
        try:
            check_folders(recipe.data)
        except SurgeryError as error:
            where = recipe.location_of(("data", "root"))
            raise SurgeryError(f"{where}: {error}" if where else str(error)) from error
        checked.append(f"data folders: {recipe.data.root / recipe.data.train_split}, {recipe.data.root / recipe.data.val_split}")
    recipe, head = fit_head(recipe)
    head = check_transfer(recipe) or head
    checked.append(f"classifier: {head or _classifier_note(recipe)}")
    if recipe.data is not None:
        try:
            checked.append(check_batches(recipe, world_size))
        except FieldError as error:
            raise error.locate(recipe.location_of(error.field)) from error
    model = recipe_model(recipe, "meta")
    checked += check_sequence_lengths(recipe, model)
    checked += check_halting(recipe, model)
    checked.append(_check_plan(recipe, model))
    check_prunable(recipe)
    if out is not None:
        check_run_dir(out, resume=resume, force=force)
        checked.append(f"output: {out} ({'resume' if resume else 'replace' if force else 'new run'})")
    return Preflight(recipe, head, checked)


def check_stage_order(recipe: Recipe) -> None:
    """Fit, then halt, train the teacher, so they come before every stage that uses the student."""
    order = {"fit": 0, "halt": 1}
    kinds = [stage.kind for stage in recipe.stages]
    for index, kind in enumerate(kinds):
        before = [other for other in kinds[:index] if order.get(other, 2) > order.get(kind, 2)]
        if before:
            where = recipe.location_of(("stages", index, "kind")) or f"stages.{index}.kind"
            raise SurgeryError(f"{where}: {kind} trains the teacher, so it comes before every {before[0]} stage (fit, then halt, then the student's stages)")


def check_batches(recipe: Recipe, world_size: int) -> str:
    """Every training stage's per-process batch fits in one process's share of the training split (full batches only)."""
    assert recipe.data is not None, "only recipes with data train"
    examples = train_size(recipe.data) // world_size
    kind = "articles" if recipe.model.source == "transformers" else "images"
    for index, stage in enumerate(recipe.stages):
        if isinstance(stage, TrainingStage):
            batch = per_rank_batch(stage.batch_size // stage.grad_accum_steps, world_size)
            if examples < batch:
                where = recipe.location_of(("stages", index, "batch_size")) or f"stages.{index}.batch_size"
                raise SurgeryError(f"{where}: {examples} training {kind} per process is fewer than one batch of {batch}")
    return f"batches: every training stage fits in {examples} training {kind} per process"


def describe_learning_rates(recipe: Recipe) -> str:
    """Each training stage's peak learning rate as the optimiser gets it, with the scaling that made it."""
    rates = []
    for index, stage in enumerate(recipe.stages):
        if isinstance(stage, TrainingStage):
            scaling = f" ({stage.lr:g} × {stage.batch_size} / {stage.lr_base_batch})" if stage.lr_base_batch else ""
            rates.append(f"stages.{index} {stage.name or stage.kind} {stage.peak_lr:.3g}{scaling}")
    return f"learning rates: {', '.join(rates)}"


def _classifier_note(recipe: Recipe) -> str:
    if recipe.data is None:
        return "no data section"
    if recipe.model.source == "transformers":
        return "none (a text encoder's labels feed a linear probe)"
    return "matches the data"


def check_prunable(recipe: Recipe) -> None:
    """A stage that prunes (prune, or distill with a hoyer_weight) needs a substitute that can shrink
    (`far_modules.Prunable`) among the recipe's rewrites."""
    prune = next((index for index, stage in enumerate(recipe.stages) if _prunes(stage)), None)
    used = sorted({rewrite.substitute for rewrite in recipe.rewrites})
    if prune is not None and not any(_prunable(name) for name in used):
        key, what = ("kind", "prune") if recipe.stages[prune].kind == "prune" else ("hoyer_weight", "distill with a hoyer_weight")
        where = recipe.location_of(("stages", prune, key)) or f"stages.{prune}.{key}"
        prunable = ", ".join(name for name in substitute_names() if _prunable(name))
        raise SurgeryError(f"{where}: {what} needs a prunable substitute ({prunable}); this recipe uses {', '.join(used)}")


def _prunes(stage: Stage) -> bool:
    return stage.kind == "prune" or (isinstance(stage, DistillStage) and stage.hoyer_weight > 0)


def _prunable(name: str) -> bool:
    return issubclass(get_substitute(name), Prunable)


def check_sequence_lengths(recipe: Recipe, model: nn.Module) -> list[str]:
    """A text encoder's lengths (data.max_tokens, every latency an evaluate stage times) fit its position table,
    so no run trains for an hour and then fails at its first evaluation."""
    if not takes_tokens(model):
        return []
    longest = sequence_length(model)[0]
    asked = [(("data", "max_tokens"), recipe.data.max_tokens)] if isinstance(recipe.data, WikiData) and recipe.data.max_tokens else []
    for index, stage in enumerate(recipe.stages):
        if isinstance(stage, EvaluateStage) and (stage.metrics is None or "latency" in stage.metrics):
            asked += [(("stages", index, "latency_lengths"), length) for length in stage.latency_lengths]
    for key, length in asked:
        if length > longest:
            where = recipe.location_of(key) or ".".join(map(str, key))
            raise SurgeryError(f"{where}: {length} tokens is more than the {longest} positions {type(model).__name__} has")
    return [f"sequence lengths: every one fits {type(model).__name__}'s {longest} positions"]


def check_halting(recipe: Recipe, model: nn.Module) -> list[str]:
    """A teacher that halts tokens (a halt stage, or model.halting) must run its blocks as one halting-capable Sequential;
    the plan is then made on the halting model, whose sites are called with its token mask."""
    halts = next((index for index, stage in enumerate(recipe.stages) if stage.kind == "halt"), None)
    follows = next((index for index, stage in enumerate(recipe.stages) if isinstance(stage, DistillStage) and stage.halting == "teacher"), None)
    if follows is not None and halting_gate(recipe) is None:
        where = recipe.location_of(("stages", follows, "halting")) or f"stages.{follows}.halting"
        raise SurgeryError(f"{where}: the student follows its teacher's halting, and this teacher does not halt (no halt stage or model.halting)")
    try:
        halting = restore_halting(recipe, model, input_size(model, recipe.model.input_size))
    except SurgeryError as error:
        key = ("stages", halts, "kind") if halts is not None else ("model", "halting")
        raise SurgeryError(f"{recipe.location_of(key) or '.'.join(map(str, key))}: {error}") from error
    if halting is None:
        return []
    for index, stage in enumerate(recipe.stages):
        if isinstance(stage, HaltStage) and stage.target_depth > len(halting):
            where = recipe.location_of(("stages", index, "target_depth")) or f"stages.{index}.target_depth"
            raise SurgeryError(f"{where}: {stage.target_depth:g} is past the model's last block ({len(halting)}); the prior centres halting on a block 1..{len(halting)}")
    return [f"halting: {halting.extra_repr()}"]


def _check_plan(recipe: Recipe, model: nn.Module) -> str:
    """Trace, detect, select and test-build every substitute on the meta device; sparsity ranks wait for the teacher."""
    if any(rewrite.select.sparsity for rewrite in recipe.rewrites):
        return "plan: selected by attention sparsity, measured when the run reaches the rewrite"
    steps = plan(recipe, model).steps
    return f"plan: {len(steps)} sites replaced ({', '.join(sorted({step.substitute for step in steps}))})"
