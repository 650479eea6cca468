"""`surgery apply`: run a recipe's stages in order, with the rewrite before the first student stage.

Fit and halt stages train the teacher; the rewrite happens right before the first other
stage (a run from a finished one, `model.from_run`, may start with its student
rewritten already); every epoch and every finished stage is checkpointed, so `--resume`
continues a killed run where its last checkpoint left it.
"""

from __future__ import annotations

import json
from pathlib import Path

from surgery.detect.sparsity import METRICS, measure_sites
from surgery.errors import SurgeryError
from surgery.measure.costing import price_models
from surgery.models import input_size, recipe_model
from surgery.recipe import TEACHER_STAGES, Recipe, dump_recipe
from surgery.rewrite.plan import plan
from surgery.rewrite.student import build_student
from surgery.runs.halting import restore_halting
from surgery.runs.preflight import preflight
from surgery.runs.record import SurgeryRecord
from surgery.runs.replay import replay
from surgery.runs.report import write_report
from surgery.runs.rundir import RunDir, prepare_run_dir
from surgery.runs.stages import run_stage
from surgery.runs.state import RunProgress, RunState
from surgery.runs.transfer import Source, load_source
from surgery.train.checkpoint import (
    latest_checkpoint,
    load_state,
    load_weights,
    load_weights_into,
    restore_rng,
    rng_state,
    save_checkpoint,
    save_model_atomic,
    seed_everything,
    write_text_atomic,
)
from surgery.train.distributed import DistContext, barrier, init_distributed
from surgery.train.engine import console
from surgery.train.metrics import MetricsLog


def apply_recipe(
    recipe: Recipe, out: str | Path, *, resume: bool = False, force: bool = False, device: str = "cpu", tensorboard: bool = False
) -> RunDir:
    """Run every stage of `recipe` into `out`; returns the finished run directory.

    Everything checkable without training (`surgery.runs.preflight`) is checked before `out` is touched.
    """
    ctx = init_distributed(device)
    out = Path(out)
    checked = preflight(recipe, out if ctx.is_main else None, resume=resume, force=force, world_size=ctx.world_size)
    recipe, head = checked.recipe, checked.head
    run = prepare_run_dir(out, resume=resume, force=force) if ctx.is_main else RunDir(out)
    barrier(ctx)
    if resume:
        _check_same_recipe(run, recipe)
    elif ctx.is_main:
        write_text_atomic(run.recipe, dump_recipe(recipe))
    state = _start(recipe, run, ctx, resume, tensorboard)
    first, training = _resume_point(state) if resume else (0, None)
    if head is not None:
        state.results["head"] = head
        if ctx.is_main:
            console.print(f"model: {head}", highlight=False, soft_wrap=True)
    for index in range(first, len(recipe.stages)):
        stage = recipe.stages[index]
        if stage.kind not in TEACHER_STAGES and state.student is None:
            _rewrite(state)
        run_stage(state, stage, index, training if index == first else None)
        _stage_done(state, index)
    if state.student is None:
        _rewrite(state)
    if ctx.is_main:
        _finish(state)
    return run


def _start(recipe: Recipe, run: RunDir, ctx: DistContext, resume: bool, tensorboard: bool) -> RunState:
    seed_everything(recipe.seed)
    model = recipe.model
    checkpointed = resume and latest_checkpoint(run.checkpoints) is not None
    source = load_source(recipe, ctx.device.type) if model.from_run is not None and not checkpointed else None
    fresh = not resume and not any(stage.kind == "fit" for stage in recipe.stages)
    teacher = source.teacher if source is not None else recipe_model(recipe, ctx.device.type, weights=fresh)
    teacher.requires_grad_(False)
    log = MetricsLog(run.metrics if ctx.is_main else None, run.root / "tensorboard" if tensorboard and ctx.is_main else None)
    state = RunState(recipe, ctx, run, log, teacher, input_size(teacher, model.input_size))
    if source is not None:  # its teacher comes halting as its run did (surgery.runs.transfer)
        _adopt(state, source)
    else:
        restore_halting(recipe, teacher, state.input_size, stages=0)
    return state


def _adopt(state: RunState, source: Source) -> None:
    """Start from a finished run's models; a student comes rewritten, so its teacher is saved now (no rewrite follows)."""
    state.results["transfer"] = source.summary
    if source.student is not None:
        state.plan, state.student, state.record = source.plan, source.student, source.record
        if state.ctx.is_main:
            save_model_atomic(state.teacher, state.run.teacher_weights)


def _rewrite(state: RunState) -> None:
    """Freeze the teacher, save it once, and build the student from the plan."""
    state.teacher.requires_grad_(False)
    if state.ctx.is_main and not state.run.teacher_weights.exists():
        save_model_atomic(state.teacher, state.run.teacher_weights)
    sparsity = _measure_sparsity(state) if any(r.select.sparsity for r in state.recipe.rewrites) else None
    state.plan = plan(state.recipe, state.teacher, sparsity)
    state.student = build_student(state.teacher, state.plan)
    if state.ctx.is_main:
        for skip in state.plan.skipped:
            console.print(f"skipped: {skip.reason}", highlight=False, soft_wrap=True)
    state.record = SurgeryRecord.of(state.student, list(state.plan.steps), sparsity)


def _measure_sparsity(state: RunState) -> dict[str, dict[str, float]]:
    """Attention sparsity of every site of the (trained) teacher on validation data, for sparsity selectors."""
    results = measure_sites(state.teacher.eval(), state.recipe, state.input_size)
    return {result.path: {m: result.mean(m) for m in METRICS} for result in results}


def _stage_done(state: RunState, index: int) -> None:
    if not state.ctx.is_main:
        return
    weights = {"student": state.student.state_dict()} if state.student is not None else {"teacher": state.teacher.state_dict()}
    state.last_checkpoint = save_checkpoint(
        state.run.checkpoints, f"stage{index:02d}-done", weights, state.progress(index, complete=True).to_json(), {"rng": rng_state()}
    )


def _resume_point(state: RunState) -> tuple[int, dict | None]:
    """Restore models and results from the latest checkpoint; say which stage to run next and how."""
    checkpoint = latest_checkpoint(state.run.checkpoints)
    if checkpoint is None:
        return 0, None
    saved, training = load_state(checkpoint)
    progress = RunProgress.from_json(saved, checkpoint / "state.json")
    state.results, state.pruned, state.last_checkpoint = progress.results, progress.pruned, checkpoint
    if state.run.teacher_weights.exists():
        load_weights_into(state.teacher, state.run.teacher_weights)
    else:
        state.teacher.load_state_dict(load_weights(checkpoint, "teacher"), strict=True)
    restore_halting(state.recipe, state.teacher, state.input_size, stages=progress.stage_index + 1)
    if progress.record is not None:
        state.plan, state.student = replay(state.recipe, state.teacher, progress.record, load_weights(checkpoint, "student"))
        state.record = progress.record
    if progress.complete:
        restore_rng(training["rng"])
        state.log.truncate_after(progress.stage_index + 1, 0)
        return progress.stage_index + 1, None
    state.log.truncate_after(progress.stage_index, progress.step)
    return progress.stage_index, {**training, "epoch": progress.epoch, "step": progress.step}


def _check_same_recipe(run: RunDir, recipe: Recipe) -> None:
    if run.recipe.read_text() != dump_recipe(recipe):
        raise SurgeryError(f"{run.root}: --resume needs the recipe the run started with ({run.recipe}); it differs")


def _finish(state: RunState) -> None:
    save_model_atomic(state.student, state.run.student_weights)
    write_text_atomic(state.run.record, json.dumps(state.record.to_json(), indent=2))
    cost = price_models(state.recipe, state.plan, state.teacher, state.student).to_json()
    write_report(state.run, {**state.results, "cost": cost}, state.recipe)
