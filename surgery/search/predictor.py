"""The quality predictor: each option distilled at each site alone for a few steps, then scored there.

Every block of a uniform student (every searched site takes one option) is fed the teacher's input to that block
(teacher forcing), so no block's loss reaches another's substitute: one short run per option trains all its sites
at once, each as if it stood alone in the teacher. Each site is then scored on validation data:

- `output_kl`: the teacher with that site alone swapped for its distilled substitute, against the teacher, at the
  output: KL(teacher ‖ swapped) of the class distributions (1 - cosine of a text encoder's sentence embedding).
  It counts how much of a block's error the blocks after it pass on (Puzzle's replace-one-block score).
- `block_error`: the relative squared error of the site's block output under teacher forcing, ‖Ŷ − Y‖² / ‖Y‖².
- `task`: what the pipeline ends on. The distilled uniform student is finetuned on the task loss for a few steps,
  all its weights free, and its validation task loss less the teacher's (finetuned alike) is the option's gain,
  which may be negative: a substitute can end better than the attention it replaced. Each site takes the share of
  it that the site weighs in the output (its output KL summed over options, normalised over sites).

A mix's predicted loss is the sum over its sites (keep costs 0).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from timm.optim import create_optimizer_v2
from torch import nn
from torch.utils.data import DataLoader

from surgery.recipe import DistillStage, FinetuneStage, PredictorSpec
from surgery.rewrite.student import substitute_paths
from surgery.train.batches import Inputs, is_text, predict, to_device, token_mask
from surgery.train.capture import capture_inputs, capture_outputs, force_inputs
from surgery.train.engine import Objective
from surgery.train.evaluation import first_tensor
from surgery.train.objectives import TaskLoss, ce_objective, distill_objective, embedding_objective

Losses = dict[str, dict[str, float]]
"""Site path -> option label -> predicted loss."""
SCORES = ("task", "output_kl", "block_error")


@dataclass(frozen=True)
class OptionScores:
    """What one option's predictor run measured: each site's block error and output divergence, and the task loss its
    uniform student ends on. It depends on that option alone, so it is cached alone: adding a candidate trains only it."""

    block_error: dict[str, float]
    output_kl: dict[str, float]
    task_loss: float

    def to_json(self) -> dict[str, Any]:
        return {"block_error": self.block_error, "output_kl": self.output_kl, "task_loss": self.task_loss}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OptionScores:
        return cls(data["block_error"], data["output_kl"], data["task_loss"])


class Predictor:
    """Scores options at the sites `blocks` names (site path -> the block holding it) against `teacher`.

    Each option's uniform student (every searched site takes it) has its substitutes trained `spec.steps` steps
    (AdamW, constant `spec.lr`) to match the teacher's block outputs under teacher forcing, then is trained whole
    `spec.finetune_steps` steps on `task` (constant `spec.finetune_lr`), from the same seed and the same batches;
    everything is measured on `spec.eval_batches` of `val`.
    """

    def __init__(self, teacher: nn.Module, blocks: Mapping[str, str], train: DataLoader, val: DataLoader, spec: PredictorSpec, seed: int,
                 task: TaskLoss) -> None:
        self.teacher, self.blocks, self.train, self.spec, self.seed, self.task = teacher.eval(), dict(blocks), train, spec, seed, task
        device = next(teacher.parameters()).device
        self.batches = [(to_device(inputs, device), labels.to(device)) for inputs, labels in itertools.islice(val, spec.eval_batches)]
        self.inputs = [batch for batch, _ in self.batches]
        with torch.no_grad():
            self.wanted = [predict(teacher, batch) for batch in self.inputs]
        self.imitate = distill_objective(teacher, DistillStage(epochs=1, lr=spec.lr, mode="teacher_forced", ce_weight=0.0), list(blocks.values()),
                                         list(blocks), text=task.uses_teacher)
        self.learn = embedding_objective(teacher) if task.uses_teacher else ce_objective(FinetuneStage(epochs=1, lr=spec.finetune_lr))

    def reference(self) -> float:
        """The task loss the teacher ends on, finetuned as every student is: what an option's gain is measured from (a
        text encoder's loss is its distance to the teacher, 0 for the teacher itself)."""
        return 0.0 if self.task.uses_teacher else self._finetuned_loss(copy.deepcopy(self.teacher))

    def score(self, student: nn.Module) -> OptionScores:
        """`student` (trained in place) distilled, scored at every site, then finetuned and its task loss measured."""
        torch.manual_seed(self.seed)
        substitutes = [p for path in substitute_paths(student) for p in student.get_submodule(path).parameters()]
        _train(student, substitutes, self.imitate, itertools.islice(_pairs(self.train), self.spec.steps), self.spec.lr)
        errors = block_errors(self.teacher, student, list(self.blocks.values()), self.inputs)
        return OptionScores(
            block_error={path: errors[block] for path, block in self.blocks.items()},
            output_kl={path: swap_divergence(self.teacher, path, student.get_submodule(path), self.inputs, self.wanted) for path in self.blocks},
            task_loss=self._finetuned_loss(student),
        )

    def _finetuned_loss(self, model: nn.Module) -> float:
        """`model` trained whole `spec.finetune_steps` steps on the task, then its mean task loss on the validation batches."""
        torch.manual_seed(self.seed)
        _train(model, list(model.parameters()), self.learn, itertools.islice(_pairs(self.train), self.spec.finetune_steps), self.spec.finetune_lr)
        with torch.no_grad():
            losses = [self.task(predict(model, inputs), target, labels)[0].item() for (inputs, labels), target in zip(self.batches, self.wanted)]
        return sum(losses) / len(losses)


def site_scores(scored: Mapping[str, OptionScores], reference: float) -> dict[str, Losses]:
    """Every score (`SCORES`) of every option at every site (keep: 0), from each option's measurements and the
    teacher's finetuned task loss `reference`: an option's gain (its task loss less the reference) is shared out over
    sites by how much each weighs in the output (`_site_weights`)."""
    paths = list(next(iter(scored.values())).output_kl)
    scores: dict[str, Losses] = {score: {path: {"keep": 0.0} for path in paths} for score in SCORES}
    for label, measured in scored.items():
        for path in paths:
            scores["block_error"][path][label] = measured.block_error[path]
            scores["output_kl"][path][label] = measured.output_kl[path]
    weights = _site_weights(scores["output_kl"])
    for label, measured in scored.items():
        for path in paths:
            scores["task"][path][label] = (measured.task_loss - reference) * weights[path]
    return scores


def _site_weights(divergences: Losses) -> dict[str, float]:
    """How much each site weighs in the output: its divergences summed over options, as a share of all sites'."""
    totals = {path: sum(by_option.values()) for path, by_option in divergences.items()}
    whole = sum(totals.values())
    return {path: total / whole if whole > 0 else 1 / len(totals) for path, total in totals.items()}


def _train(model: nn.Module, params: list[nn.Parameter], objective: Objective, batches: Iterator[tuple[Inputs, torch.Tensor]], lr: float) -> None:
    """`params` of `model` trained on `objective` over `batches` (AdamW, constant `lr`, no weight decay); none: nothing
    to learn (a substitute that drops attention), and the model stays as it is."""
    if not params:
        return
    model.train().requires_grad_(False)
    for parameter in params:
        parameter.requires_grad_(True)
    optimizer = create_optimizer_v2(params, opt="adamw", lr=lr, weight_decay=0.0)
    device = next(model.parameters()).device
    for inputs, labels in batches:
        result = objective(model, to_device(inputs, device), labels.to(device))
        optimizer.zero_grad(set_to_none=True)
        result.loss.backward()
        optimizer.step()
    model.eval().requires_grad_(False)


@torch.no_grad()
def swap_divergence(teacher: nn.Module, path: str, module: nn.Module, batches: Sequence[Inputs], wanted: Sequence[torch.Tensor]) -> float:
    """Mean divergence of `teacher` with `module` at `path` from the teacher's own outputs `wanted` on `batches`."""
    total, count = 0.0, 0
    with _swapped(teacher, path, module):
        for inputs, target in zip(batches, wanted):
            got = predict(teacher, inputs)
            if is_text(inputs):
                divergence = 1 - F.cosine_similarity(got, target, dim=-1)
            else:
                divergence = F.kl_div(F.log_softmax(got, -1), F.log_softmax(target, -1), log_target=True, reduction="none").sum(-1)
            total, count = total + divergence.sum().item(), count + len(divergence)
    return total / max(count, 1)


@contextmanager
def _swapped(model: nn.Module, path: str, module: nn.Module) -> Iterator[None]:
    original = model.get_submodule(path)
    model.set_submodule(path, module)
    try:
        yield
    finally:
        model.set_submodule(path, original)


@torch.no_grad()
def block_errors(teacher: nn.Module, student: nn.Module, blocks: Sequence[str], batches: Sequence[Inputs]) -> dict[str, float]:
    """‖Ŷ − Y‖² / ‖Y‖² of each block's output over `batches`, every student block fed the teacher's input to it."""
    student.eval()
    sums = torch.zeros(len(blocks), 2, dtype=torch.float64)
    for inputs in batches:
        wanted, fed = _teacher_blocks(teacher, blocks, inputs)
        with force_inputs(student, fed), capture_outputs(student, blocks) as got:
            predict(student, inputs)
        mask = token_mask(inputs)
        for row, block in enumerate(blocks):
            sums[row] += torch.stack(_squared_error(first_tensor(got[block]), first_tensor(wanted[block]), mask)).double().cpu()
    return {block: (error / reference).item() for block, (error, reference) in zip(blocks, sums)}


def _teacher_blocks(teacher: nn.Module, blocks: Sequence[str], inputs: Inputs) -> tuple[dict[str, object], dict[str, torch.Tensor]]:
    with torch.no_grad(), capture_outputs(teacher, blocks) as wanted, capture_inputs(teacher, blocks) as fed:
        predict(teacher, inputs)
    return wanted, fed


def _squared_error(got: torch.Tensor, wanted: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ (Ŷ − Y)² and Σ Y² over the real tokens (`mask` (B, N) of padded text; None: all)."""
    keep = mask.unsqueeze(-1).to(got.dtype) if mask is not None and got.dim() == 3 and got.shape[:2] == mask.shape else 1.0
    return ((got - wanted) ** 2 * keep).sum(), (wanted**2 * keep).sum()


def _pairs(loader: DataLoader) -> Iterator[tuple[Inputs, torch.Tensor]]:
    """(inputs, labels) batches, going round the loader for as long as they are asked for."""
    return itertools.chain.from_iterable(iter(loader) for _ in itertools.count())

