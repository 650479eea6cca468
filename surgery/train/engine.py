"""The one training loop every stage uses.

timm builds the optimizer and the warm-up + cosine schedule (stepped per
optimizer update); the loop adds gradient accumulation, AMP on CUDA, DDP,
per-step metrics, a progress bar, a checkpoint at every epoch end, and a stop
on a non-finite loss that names the last good checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from surgery.data import Loaders, set_epoch
from surgery.errors import SurgeryError
from surgery.recipe import TrainingStage
from surgery.train.batches import Inputs, to_device
from surgery.train.checkpoint import restore_rng, rng_state
from surgery.train.distributed import DistContext
from surgery.train.metrics import MetricsLog

console = Console(stderr=True)


@dataclass(frozen=True)
class StepResult:
    """A micro-batch's loss (to backpropagate) and the numbers to log."""

    loss: torch.Tensor
    logs: dict[str, float]


Objective = Callable[[nn.Module, Inputs, torch.Tensor], StepResult]
"""(model, inputs (images, or a text encoder's keyword inputs), labels) -> the micro-batch's loss and logs."""
Saver = Callable[[int, int, dict], Path]
Evaluator = Callable[[nn.Module], dict[str, float]]


class NonFiniteLoss(SurgeryError):
    """Training diverged; the message names the step and the last checkpoint to go back to."""


class Engine:
    """Trains `params` of `model` for one stage; `objective` says what the loss is."""

    def __init__(
        self,
        model: nn.Module,
        params: list[tuple[str, nn.Parameter]],
        stage: TrainingStage,
        loaders: Loaders,
        ctx: DistContext,
        *,
        label: str,
        stage_index: int,
        objective: Objective,
        evaluate: Evaluator,
        save: Saver,
        log: MetricsLog,
        last_checkpoint: Path | None = None,
        perturb: Callable[[], AbstractContextManager] = nullcontext,
    ) -> None:
        self.model, self.stage, self.loaders, self.ctx = model, stage, loaders, ctx
        self.label, self.stage_index = label, stage_index
        self.objective, self.evaluate, self.save, self.log = objective, evaluate, save, log
        self.last_checkpoint = last_checkpoint
        self.perturb = perturb  # around each micro-step's forward and backward (hardware-aware training's weights)
        self.position = "the start"
        self.steps_per_epoch = max(1, len(loaders.train) // stage.grad_accum_steps)
        self.total_steps = math.ceil(stage.epochs * self.steps_per_epoch)
        self.optimizer = create_optimizer_v2(_param_groups(params, stage.weight_decay), opt=stage.optimizer, lr=stage.peak_lr)
        self.scheduler = _scheduler(self.optimizer, stage, self.total_steps, self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler("cuda", enabled=stage.amp == "fp16" and ctx.device.type == "cuda")
        self.wrapped = DistributedDataParallel(model, device_ids=_device_ids(ctx)) if ctx.distributed else model

    def run(self, resume: dict | None = None) -> dict[str, float]:
        """Train to the end of the stage (from `resume`, a checkpoint's training state); return last val metrics."""
        epoch, step = self._restore(resume) if resume else (0, 0)
        self._note_precision()
        metrics: dict[str, float] = resume.get("val", {}) if resume else {}
        with self._progress() as progress:
            task = progress.add_task(self.label, total=self.total_steps, completed=step, status="")
            while step < self.total_steps:
                step = self._epoch(epoch, step, progress, task)
                epoch += 1
                metrics = self.evaluate(self.model)
                self.log.write({"kind": "epoch", "stage": self.label, "stage_index": self.stage_index, "step": step, "epoch": epoch, **metrics})
                self.last_checkpoint = self.save(epoch, step, self._training_state(metrics))
        return metrics

    def _epoch(self, epoch: int, step: int, progress: Progress, task: int) -> int:
        self.model.train()
        set_epoch(self.loaders.train, epoch)
        accum = self.stage.grad_accum_steps
        for index, (inputs, labels) in enumerate(self.loaders.train):
            if step >= self.total_steps or index >= self.steps_per_epoch * accum:
                break
            boundary = (index + 1) % accum == 0
            self.position = f"epoch {epoch + 1}, step {step + 1}"
            logs = self._micro_step(inputs, labels, sync=boundary)
            if boundary:
                step = self._update(step, epoch, logs)
                progress.update(task, completed=step, status=_status(logs))
        return step

    def _micro_step(self, inputs: Inputs, labels: torch.Tensor, sync: bool) -> dict[str, float]:
        inputs, labels = to_device(inputs, self.ctx.device), labels.to(self.ctx.device, non_blocking=True)
        if self.loaders.mixup is not None:
            inputs, labels = self.loaders.mixup(inputs, labels)
        no_sync = self.wrapped.no_sync if self.ctx.distributed and not sync else nullcontext
        with self.perturb():
            with no_sync(), self._autocast():
                result = self.objective(self.wrapped, inputs, labels)
            if not torch.isfinite(result.loss):
                raise NonFiniteLoss(
                    f"{self.label}: loss became {result.loss.item()} at {self.position}; "
                    f"last good checkpoint: {self.last_checkpoint or 'none yet (the stage had not finished an epoch)'}"
                )
            with no_sync():
                self.scaler.scale(result.loss / self.stage.grad_accum_steps).backward()
        return result.logs

    def _update(self, step: int, epoch: int, logs: dict[str, float]) -> int:
        if self.stage.clip_grad is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]], self.stage.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        step += 1
        if self.scheduler is not None:
            self.scheduler.step_update(step)
        lr = self.optimizer.param_groups[0]["lr"]
        self.log.write({"kind": "step", "stage": self.label, "stage_index": self.stage_index, "step": step, "epoch": epoch, "lr": lr, **logs})
        return step

    def _training_state(self, val: dict[str, float]) -> dict:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "val": val,
        }

    def _restore(self, resume: dict) -> tuple[int, int]:
        self.optimizer.load_state_dict(resume["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(resume["scheduler"])
        self.scaler.load_state_dict(resume["scaler"])
        restore_rng(resume["rng"])
        return resume["epoch"], resume["step"]

    def _autocast(self):
        if self.stage.amp == "none" or self.ctx.device.type != "cuda":
            return nullcontext()
        return torch.autocast("cuda", dtype=torch.bfloat16 if self.stage.amp == "bf16" else torch.float16)

    def _note_precision(self) -> None:
        if self.stage.amp != "none" and self.ctx.device.type != "cuda" and self.ctx.is_main:
            console.print(f"{self.label}: amp={self.stage.amp} applies on CUDA only; training in fp32 on {self.ctx.device}")

    def _progress(self) -> Progress:
        return Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), TextColumn("{task.fields[status]}"), console=console, disable=not self.ctx.is_main,
        )


def _param_groups(params: list[tuple[str, nn.Parameter]], weight_decay: float) -> list[dict]:
    """No weight decay on biases, norms and other 1-D parameters (DeiT's convention)."""
    decay = [p for _, p in params if p.ndim > 1]
    no_decay = [p for _, p in params if p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _scheduler(optimizer: torch.optim.Optimizer, stage: TrainingStage, total_steps: int, steps_per_epoch: int):
    if stage.scheduler == "none":
        return None
    scheduler, _ = create_scheduler_v2(
        optimizer, sched=stage.scheduler, num_epochs=total_steps, warmup_epochs=round(stage.warmup_epochs * steps_per_epoch),
        warmup_lr=stage.warmup_lr, min_lr=stage.min_lr, decay_epochs=max(1, total_steps // 3), step_on_epochs=False,
        updates_per_epoch=1,
    )
    return scheduler


def _device_ids(ctx: DistContext) -> list[int] | None:
    return [ctx.local_rank] if ctx.device.type == "cuda" else None


def _status(logs: dict[str, float]) -> str:
    return " ".join(f"{key} {value:.4g}" for key, value in logs.items())
