"""What each stage minimises: cross-entropy, block-wise distillation (paper eq. 3-4), KD, Hoyer.

Each `*_objective` returns a function (model, images, labels) -> StepResult
that the Engine calls once per micro-batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from timm.loss import SoftTargetCrossEntropy
from torch import nn
from torch.utils._pytree import tree_leaves

from far_modules import hoyer_penalty
from surgery.recipe import DistillStage, FinetuneStage, PruneStage, TrainingStage
from surgery.train.capture import capture_inputs, capture_outputs, force_inputs
from surgery.train.engine import Objective, StepResult


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Cross-entropy on hard labels, or on the soft targets mixup/cutmix produce."""
    if labels.is_floating_point():
        return SoftTargetCrossEntropy()(logits, labels)
    return F.cross_entropy(logits, labels, label_smoothing=smoothing)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    hard = labels.argmax(-1) if labels.is_floating_point() else labels
    return (logits.argmax(-1) == hard).float().mean().item()


def ce_objective(stage: TrainingStage) -> Objective:
    """Plain supervised training (fit, finetune without KD)."""

    def objective(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> StepResult:
        logits = model(images)
        loss = classification_loss(logits, labels, stage.label_smoothing)
        return StepResult(loss, {"loss": loss.item(), "acc": accuracy(logits, labels)})

    return objective


def similarity_loss(student: torch.Tensor, teacher: torch.Tensor, stage: DistillStage) -> torch.Tensor:
    """sim(Y, Ŷ) of eq. 3: mean squared error, or 1 - cosine along the recipe's axis."""
    if stage.similarity == "mse":
        return F.mse_loss(student, teacher)
    if stage.similarity_axis == "flat":
        student, teacher, dim = student.flatten(1), teacher.flatten(1), -1
    else:
        dim = -1 if stage.similarity_axis == "channel" else -2  # (B, N, C): across channels or across tokens
    return (1 - F.cosine_similarity(student, teacher, dim=dim)).mean()


def _block_similarity(student: object, teacher: object, stage: DistillStage) -> torch.Tensor:
    """sim over a block's output tensors: one tensor for most blocks, several for those returning tuples (TNT's)."""
    pairs = [(s, t) for s, t in zip(tree_leaves(student), tree_leaves(teacher)) if isinstance(s, torch.Tensor) and s.is_floating_point()]
    return torch.stack([similarity_loss(s, t, stage) for s, t in pairs]).sum()


def distill_objective(teacher: nn.Module, stage: DistillStage, blocks: Sequence[str], sites: Sequence[str]) -> Objective:
    """L = λ · reduce_l sim(Y_l, Ŷ_l) + ce_weight · CE (eq. 4), at block or site outputs.

    `teacher_forced` feeds every student block the teacher's input to that block;
    `free_running` lets each block see the student's own activations.
    """
    targets = list(blocks if stage.at == "block" else sites)

    def objective(student: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> StepResult:
        with torch.no_grad(), capture_outputs(teacher, targets) as wanted, capture_inputs(teacher, blocks) as fed:
            teacher(images)
        forcing = force_inputs(student, fed) if stage.mode == "teacher_forced" else nullcontext()
        with capture_outputs(student, targets) as got, forcing:
            logits = student(images)
        terms = torch.stack([_block_similarity(got[p], wanted[p], stage) for p in targets])
        similarity = terms.sum() if stage.reduce == "sum" else terms.mean()
        ce = classification_loss(logits, labels, stage.label_smoothing)
        loss = stage.weight * similarity + stage.ce_weight * ce
        return StepResult(loss, {"loss": loss.item(), "sim": similarity.item(), "ce": ce.item(), "acc": accuracy(logits, labels)})

    return objective


def finetune_objective(teacher: nn.Module, stage: FinetuneStage) -> Objective:
    """CE, plus soft-label KD from the teacher's logits when the recipe asks for it (Hinton et al.)."""
    if stage.kd is None:
        return ce_objective(stage)
    temperature, weight = stage.kd.temperature, stage.kd.weight

    def objective(student: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> StepResult:
        with torch.no_grad():
            target = F.softmax(teacher(images) / temperature, dim=-1)
        logits = student(images)
        ce = classification_loss(logits, labels, stage.label_smoothing)
        kd = F.kl_div(F.log_softmax(logits / temperature, dim=-1), target, reduction="batchmean") * temperature**2
        loss = ce + weight * kd
        return StepResult(loss, {"loss": loss.item(), "ce": ce.item(), "kd": kd.item(), "acc": accuracy(logits, labels)})

    return objective


def prune_objective(stage: PruneStage, prunable: Sequence[nn.Module]) -> Objective:
    """CE + hoyer_weight · Σ Group-HS over every substitute's hidden-unit groups (paper eq. 5-6)."""

    def objective(student: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> StepResult:
        logits = student(images)
        ce = classification_loss(logits, labels, stage.label_smoothing)
        hoyer = torch.stack([hoyer_penalty(module) for module in prunable]).sum()
        loss = ce + stage.hoyer_weight * hoyer
        return StepResult(loss, {"loss": loss.item(), "ce": ce.item(), "hoyer": hoyer.item(), "acc": accuracy(logits, labels)})

    return objective
