"""The stage interpreter: one function per stage `kind`, registered by name.

Each takes the run state, its stage spec and index, and the training state to
resume from (None for a fresh start); it trains through the one Engine and
records its results in the state.
"""

from __future__ import annotations

import functools
import json
import tempfile
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

from torch import nn
from torch.utils.data import DataLoader

from far_modules import Prunable, Registry, UnitKey, keep_masks, prunable_modules, pruning_report, unit_counts
from surgery.data import Loaders, build_loaders, build_val_loader
from surgery.errors import SurgeryError
from surgery.measure.counting import count
from surgery.models import example_input
from surgery.recipe import Data, DistillStage, EvaluateStage, FinetuneStage, FitStage, HaltStage, PruneStage, Stage, TrainingNoise, TrainingStage
from surgery.recipe.hardware import resolve_hardware
from surgery.rewrite.student import substitute_paths
from surgery.runs.halting import restore_halting
from surgery.runs.state import RunState
from surgery.train.checkpoint import save_checkpoint, save_model_atomic, write_text_atomic
from surgery.train.distributed import broadcast_object
from surgery.train.engine import Engine, Evaluator, Objective
from surgery.train.evaluation import block_fidelity, embedding_cosine, embedding_report, embeddings, tokens_run, top1, top1_following
from surgery.train.hardware_aware import ProgrammedWeights
from surgery.train.objectives import (
    ce_objective,
    distill_objective,
    embedding_objective,
    finetune_objective,
    halt_objective,
    hoyer_regularised,
    prune_objective,
)

StageRunner = Callable[[RunState, Any, int, dict | None], None]
"""Runs one stage: (state, its spec from the recipe, its index, training state to resume from or None)."""
STAGES: Registry[StageRunner] = Registry("stage")
EVAL_BATCH = 256
IMAGE_METRICS = frozenset({"top1", "fidelity", "params", "macs"})
TEXT_METRICS = frozenset({"embedding", "fidelity", "params", "macs", "latency"})


def run_stage(state: RunState, stage: Stage, index: int, resume: dict | None) -> None:
    """Run one stage and record its wall time (a resumed stage counts only the time after resuming)."""
    started = time.perf_counter()
    STAGES.get(stage.kind)(state, stage, index, resume)
    state.results.setdefault("stages", []).append(
        {"index": index, "kind": stage.kind, "name": stage_label(stage, index), "wall_s": round(time.perf_counter() - started, 3)}
    )


def stage_label(stage: Stage, index: int) -> str:
    return stage.name or f"{index}:{stage.kind}"


@STAGES.register("fit")
def fit(state: RunState, stage: FitStage, index: int, resume: dict | None) -> None:
    """Train the teacher from scratch (when no pretrained weights exist)."""
    _train(state, state.teacher, state.teacher.named_parameters(), stage, index, resume, ce_objective(stage), "teacher")
    state.teacher.requires_grad_(False)
    state.results["teacher"] = _measure(state, state.teacher, IMAGE_METRICS - {"fidelity"}, EvaluateStage(), _EvalData(state))


@STAGES.register("halt")
def halt(state: RunState, stage: HaltStage, index: int, resume: dict | None) -> None:
    """Token halting trained into the teacher (task loss, ponder cost, prior); then the halting teacher measured."""
    halting = restore_halting(state.recipe, state.teacher, state.input_size, stages=index + 1)
    assert halting is not None, "a halt stage gives its teacher halting"
    objective = halt_objective(stage, halting)
    _train(state, state.teacher, state.teacher.named_parameters(), stage, index, resume, objective, "teacher")
    state.teacher.requires_grad_(False)
    if "teacher" in state.results:  # a fit stage measured the dense teacher
        state.results["dense_teacher"] = state.results["teacher"]
    state.results["teacher"] = _measure(state, state.teacher, IMAGE_METRICS - {"fidelity"}, EvaluateStage(), _EvalData(state))


@STAGES.register("distill")
def distill(state: RunState, stage: DistillStage, index: int, resume: dict | None) -> None:
    """Block-wise distillation: only the substitutes learn; the teacher is the target."""
    trainable = _select(state.student, lambda name: _under(name, substitute_paths(state.student)))
    if not trainable:
        raise SurgeryError(f"stage {stage_label(stage, index)}: the substitutes have no parameters to distill (identity?); drop the stage")
    objective = distill_objective(state.teacher, stage, state.block_paths, state.plan.selected_paths, text=state.text)
    if stage.hoyer_weight:
        objective = hoyer_regularised(objective, list(_prunable(state, stage, index).values()), stage.hoyer_weight)
    _train(state, state.student, trainable, stage, index, resume, objective, "student")
    if stage.threshold is not None:
        _shrink(state, stage.threshold)


@STAGES.register("finetune")
def finetune(state: RunState, stage: FinetuneStage, index: int, resume: dict | None) -> None:
    """Task-loss training of all (or the selected) student parameters, optionally with KD."""
    trainable = _select(state.student, _trainable_rule(stage, substitute_paths(state.student)))
    objective = embedding_objective(state.teacher) if state.text else finetune_objective(state.teacher, stage)
    perturb = _programmed_weights(state, stage.noise) if stage.noise is not None else nullcontext
    _train(state, state.student, trainable, stage, index, resume, objective, "student", perturb)


def _programmed_weights(state: RunState, noise: TrainingNoise) -> ProgrammedWeights:
    """The student's crossbar weights as the recipe's device programs them with the stage's sigma."""
    device = resolve_hardware(state.recipe)[0]
    programmed = device.model_copy(update={"noise": device.noise.model_copy(update={"ideal": False, "programming_sigma": noise.sigma})})
    return ProgrammedWeights(state.student, programmed, example_input(state.student, state.input_size))


@STAGES.register("prune")
def prune(state: RunState, stage: PruneStage, index: int, resume: dict | None) -> None:
    """Hoyer-regularised training, then every unit under the threshold removed for good."""
    modules = _prunable(state, stage, index)
    trainable = _select(state.student, lambda name: True)
    objective = prune_objective(stage, list(modules.values()), state.teacher, text=state.text)
    _train(state, state.student, trainable, stage, index, resume, objective, "student")
    _shrink(state, stage.threshold)


@STAGES.register("evaluate")
def evaluate(state: RunState, stage: EvaluateStage, index: int, resume: dict | None) -> None:
    """The stage's metrics (`EvaluateStage.metrics`) of the teacher, once, and of the current student."""
    metrics = set(stage.metrics or (TEXT_METRICS if state.text else IMAGE_METRICS))
    data = _EvalData(state)
    # the teacher does not change after the rewrite: measured once per run; a transfer's is its source's, with a new, untrained classifier
    if "teacher" not in state.results and state.recipe.model.from_run is None:
        state.results["teacher"] = _measure(state, state.teacher, metrics - {"fidelity"}, stage, data)
    label = "pruned" if state.pruned else "student"
    measured = _measure(state, state.student, metrics, stage, data)
    state.results[label] = {**state.results.get(label, {}), **measured}
    _keep_evaluated(state, label)


def _keep_evaluated(state: RunState, label: str) -> None:
    """Keep the student a report row measured (`evaluated/<row>.*`): the run's final weights are only its last row's,
    and `surgery robustness` measures every row."""
    if not state.ctx.is_main:
        return
    weights = state.run.evaluated_weights(label)
    weights.parent.mkdir(exist_ok=True)
    save_model_atomic(state.student, weights)
    write_text_atomic(state.run.evaluated_record(label), json.dumps(state.record.to_json(), indent=2))


def _train(
    state: RunState,
    model: nn.Module,
    params: Iterable[tuple[str, nn.Parameter]],
    stage: TrainingStage,
    index: int,
    resume: dict | None,
    objective: Objective,
    label: str,
    perturb: Callable[[], AbstractContextManager] = nullcontext,
) -> None:
    trainable = list(params)
    model.requires_grad_(False)
    for _, p in trainable:
        p.requires_grad_(True)
    loaders = _loaders(state, stage.batch_size // stage.grad_accum_steps, stage.label_smoothing)
    engine = Engine(
        model, trainable, stage, loaders, state.ctx, label=stage_label(stage, index), stage_index=index,
        objective=objective, evaluate=_epoch_metric(state, loaders),
        save=lambda epoch, step, training: _save(state, index, label, epoch, step, training),
        log=state.log, last_checkpoint=state.last_checkpoint, perturb=perturb,
    )
    engine.run(resume)
    state.last_checkpoint = engine.last_checkpoint


def _save(state: RunState, index: int, label: str, epoch: int, step: int, training: dict):
    if not state.ctx.is_main:
        return state.last_checkpoint
    model = state.teacher if label == "teacher" else state.student
    path = save_checkpoint(
        state.run.checkpoints, f"stage{index:02d}-epoch{epoch:04d}", {label: model.state_dict()},
        state.progress(index, complete=False, epoch=epoch, step=step).to_json(), training,
    )
    state.last_checkpoint = path
    return path


def _prunable(state: RunState, stage: DistillStage | PruneStage, index: int) -> dict[str, Prunable]:
    """The student's prunable substitutes by path; a stage that prunes with none is refused."""
    modules = prunable_modules(state.student)
    if not modules:
        raise SurgeryError(f"stage {stage_label(stage, index)}: no substitute of this run is prunable")
    return modules


def _shrink(state: RunState, threshold: float) -> None:
    """Decide on rank 0, shrink everywhere, and record the new structure and the kept fractions.

    A second removal (a pruning distill stage, then a prune stage) counts from the units before the first.
    """
    report = {}
    original = state.results.get("pruning", {}).get("by_site", {})
    for path, module in prunable_modules(state.student).items():
        keep = broadcast_object({k: v.cpu() for k, v in keep_masks(module, threshold).items()}, state.ctx)
        before = _units_before(original.get(path)) or unit_counts(module)
        shrunk = module.shrink(keep)
        state.student.set_submodule(path, shrunk)
        report[path] = pruning_report(before, unit_counts(shrunk)).to_dict()
    state.pruned = True
    state.record.update(state.student)
    total_before = sum(row["before"] for r in report.values() for row in r["units"])
    total_after = sum(row["after"] for r in report.values() for row in r["units"])
    state.results["pruning"] = {"kept_fraction": total_after / total_before, "by_site": report}


def _units_before(site: dict[str, Any] | None) -> dict[UnitKey, int] | None:
    """A site's unit counts before its first pruning, from that pruning's report (JSON rows)."""
    return {(row["head"], row["direction"]): row["before"] for row in site["units"]} if site else None


def _epoch_metric(state: RunState, loaders: Loaders) -> Evaluator:
    """What each epoch logs: top-1 of a classifier, or the sentence embedding's cosine to the teacher's."""
    if not state.text:
        return lambda model: {"top1": top1(model, loaders.val, state.ctx)}
    reference, _ = embeddings(state.teacher, loaders.val, state.ctx)
    return lambda model: {"embedding_cosine": embedding_cosine(embeddings(model, loaders.val, state.ctx)[0], reference)}


class _EvalData:
    """The validation loader, and the training split in a fixed order for a probe, each built when first asked for."""

    def __init__(self, state: RunState) -> None:
        self.state = state

    @functools.cached_property
    def val(self) -> DataLoader:
        return _val_loader(self.state)

    @functools.cached_property
    def train(self) -> DataLoader:
        return _val_loader(self.state, split="train")


def _measure(state: RunState, model: nn.Module, metrics: set[str], stage: EvaluateStage, data: _EvalData) -> dict[str, Any]:
    measured: dict[str, Any] = {}
    if "top1" in metrics:
        measured["top1"] = top1(model, data.val, state.ctx)
    tokens = tokens_run(model, data.val, state.ctx)
    if tokens is not None:  # a model that halts tokens: the share of (patch token, block) pairs it ran
        measured["tokens_run"] = tokens
        if "top1" in metrics and model is not state.teacher:
            measured["top1_on_teacher_tokens"] = top1_following(model, state.teacher, data.val, state.ctx)
    if "embedding" in metrics:
        measured.update(embedding_report(model, state.teacher, data.val, data.train, state.ctx))
    if "fidelity" in metrics and state.block_paths:  # a model trained as it is (a transfer without rewrites) has no replaced block
        fidelity = block_fidelity(state.teacher, model, state.block_paths, data.val, state.ctx)
        measured["fidelity"] = sum(fidelity.values()) / len(fidelity)
        measured["fidelity_by_block"] = fidelity
    if metrics & {"params", "macs"}:
        counts = count(model, state.input_size)
        measured.update({key: value for key, value in (("params", counts.params), ("macs", counts.macs)) if key in metrics})
    if "latency" in metrics:
        measured["latency_ms"] = _latency(model, stage)
    return measured


def _latency(model: nn.Module, stage: EvaluateStage) -> dict[str, float]:
    """ONNX Runtime median milliseconds per sequence length: batch 1, one thread, appendix A.4's runs."""
    from surgery.deploy.bench import BenchSettings, sequence_latency  # onnxruntime loads only for a stage that times

    with tempfile.TemporaryDirectory(prefix="surgery-latency-") as workdir:
        timings = sequence_latency(model, stage.latency_lengths, BenchSettings(eager=False), Path(workdir))
    return {str(length): timing.median for length, timing in timings.items()}


def _loaders(state: RunState, batch_size: int, label_smoothing: float = 0.0) -> Loaders:
    return build_loaders(
        _data(state), state.input_size, batch_size, seed=state.recipe.seed, world_size=state.ctx.world_size,
        rank=state.ctx.rank, model=state.teacher, label_smoothing=label_smoothing,
    )


def _val_loader(state: RunState, split: Literal["train", "val"] = "val") -> DataLoader:
    return build_val_loader(
        _data(state), state.input_size, EVAL_BATCH, seed=state.recipe.seed, world_size=state.ctx.world_size,
        rank=state.ctx.rank, model=state.teacher, split=split,
    )


def _data(state: RunState) -> Data:
    if state.recipe.data is None:
        raise SurgeryError("data: the recipe has training or evaluation stages but no data section")
    return state.recipe.data




def _select(model: nn.Module, rule: Callable[[str], bool]) -> list[tuple[str, nn.Parameter]]:
    return [(name, p) for name, p in model.named_parameters() if rule(name)]


def _trainable_rule(stage: FinetuneStage, substitutes: list[str]) -> Callable[[str], bool]:
    if stage.trainable == "all":
        return lambda name: True
    if stage.trainable == "substitutes":
        return lambda name: _under(name, substitutes)
    return lambda name: any(fnmatchcase(name, pattern) for pattern in stage.trainable)


def _under(name: str, paths: list[str]) -> bool:
    return any(name.startswith(f"{path}.") for path in paths)


