"""What each stage minimises: the task loss, block-wise distillation (paper eq. 3-4), KD, Hoyer, token halting (A-ViT).

The task loss is cross-entropy for an image classifier; for a text encoder, whose
function is its sentence embedding, it is 1 - cosine of that embedding to the
teacher's. Each `*_objective` returns a function (model, inputs, labels) -> StepResult
that the Engine calls once per micro-batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from timm.loss import SoftTargetCrossEntropy
from torch import nn
from torch.utils._pytree import tree_leaves

from far_modules import hoyer_penalty
from surgery.recipe import DistillStage, FinetuneStage, HaltStage, PruneStage, TrainingStage
from surgery.rewrite.halting import HaltingBlocks, depth_prior, following
from surgery.train.batches import Inputs, predict, token_mask
from surgery.train.capture import capture_inputs, capture_masks, capture_outputs, force_inputs, shared_tokens, unwrap
from surgery.train.engine import Objective, StepResult


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Cross-entropy on hard labels, or on the soft targets mixup/cutmix produce."""
    if labels.is_floating_point():
        return SoftTargetCrossEntropy()(logits, labels)
    return F.cross_entropy(logits, labels, label_smoothing=smoothing)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    hard = labels.argmax(-1) if labels.is_floating_point() else labels
    return (logits.argmax(-1) == hard).float().mean().item()


@dataclass(frozen=True)
class TaskLoss:
    """The loss on what the model predicts (`predict`): cross-entropy on labels, or for a text encoder
    1 - cosine of its sentence embedding to the teacher's (`uses_teacher`)."""

    uses_teacher: bool
    smoothing: float = 0.0

    def __call__(self, output: torch.Tensor, target: torch.Tensor | None, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        if self.uses_teacher:
            assert target is not None, "the teacher's embedding is the target"
            loss = (1 - F.cosine_similarity(output, target, dim=-1)).mean()
            return loss, {"emb": loss.item()}
        loss = classification_loss(output, labels, self.smoothing)
        return loss, {"ce": loss.item(), "acc": accuracy(output, labels)}


def task_loss(stage: TrainingStage, text: bool) -> TaskLoss:
    """The embedding cosine for a text encoder, else cross-entropy with the stage's label smoothing."""
    return TaskLoss(uses_teacher=True) if text else TaskLoss(uses_teacher=False, smoothing=stage.label_smoothing)


def _teacher_output(teacher: nn.Module, inputs: Inputs, task: TaskLoss) -> torch.Tensor | None:
    if not task.uses_teacher:
        return None
    with torch.no_grad():
        return predict(teacher, inputs)


def ce_objective(stage: TrainingStage) -> Objective:
    """Plain supervised training (fit, finetune without KD)."""
    task = task_loss(stage, text=False)

    def objective(model: nn.Module, inputs: Inputs, labels: torch.Tensor) -> StepResult:
        loss, logs = task(predict(model, inputs), None, labels)
        return StepResult(loss, {"loss": loss.item(), **logs})

    return objective


def halt_objective(stage: HaltStage, halting: HaltingBlocks) -> Objective:
    """A-ViT's loss: CE + ponder_weight · mean ponder cost + prior_weight · KL(prior ‖ mean halting distribution).

    The ponder cost and the distribution are the patch tokens' (the class token never stops). The distribution is
    clamped to [0.01, 0.99] before its log, as A-ViT does, so a block no token stops in costs a bounded amount.
    """
    task = task_loss(stage, text=False)
    prior = depth_prior(len(halting), stage.target_depth, stage.prior_std)

    def objective(model: nn.Module, inputs: Inputs, labels: torch.Tensor) -> StepResult:
        task_term, logs = task(predict(model, inputs), None, labels)
        trace = halting.trace
        assert trace is not None, "the forward pass just ran the halting blocks"
        ponder = trace.ponder[:, trace.prefix_tokens :].mean()
        divergence = F.kl_div(trace.distribution.clamp(0.01, 0.99).log(), prior.to(trace.distribution), reduction="sum")
        loss = task_term + stage.ponder_weight * ponder + stage.prior_weight * divergence
        logs |= {"ponder": ponder.item(), "prior_kl": divergence.item(), "tokens_run": trace.tokens_run.mean().item()}
        return StepResult(loss, {"loss": loss.item(), **logs})

    return objective


def embedding_objective(teacher: nn.Module) -> Objective:
    """A text encoder's finetune: its sentence embedding pulled towards the teacher's (the whole function to keep)."""
    task = TaskLoss(uses_teacher=True)

    def objective(student: nn.Module, inputs: Inputs, labels: torch.Tensor) -> StepResult:
        loss, logs = task(predict(student, inputs), _teacher_output(teacher, inputs, task), labels)
        return StepResult(loss, {"loss": loss.item(), **logs})

    return objective


def similarity_loss(student: torch.Tensor, teacher: torch.Tensor, stage: DistillStage, mask: torch.Tensor | None = None) -> torch.Tensor:
    """sim(Y, Ŷ) of eq. 3: mean squared error, or 1 - cosine along the recipe's axis.

    `mask` (B, N), True at real tokens, keeps padding out of (B, N, C) outputs: padded
    positions count in no mean and contribute nothing to a cosine.
    """
    if mask is not None and student.dim() == 3 and student.shape[:2] == mask.shape:
        return _masked_similarity(student, teacher, stage, mask)
    if stage.similarity == "mse":
        return F.mse_loss(student, teacher)
    if stage.similarity_axis == "flat":
        student, teacher, dim = student.flatten(1), teacher.flatten(1), -1
    else:
        dim = -1 if stage.similarity_axis == "channel" else -2  # (B, N, C): across channels or across tokens
    return (1 - F.cosine_similarity(student, teacher, dim=dim)).mean()


def _masked_similarity(student: torch.Tensor, teacher: torch.Tensor, stage: DistillStage, mask: torch.Tensor) -> torch.Tensor:
    keep = mask.unsqueeze(-1).to(student.dtype)
    if stage.similarity == "mse":
        return ((student - teacher) ** 2 * keep).sum() / (keep.sum() * student.shape[-1]).clamp(min=1)
    if stage.similarity_axis == "channel":
        cosine = F.cosine_similarity(student, teacher, dim=-1)
        return ((1 - cosine) * mask).sum() / mask.sum().clamp(min=1)
    student, teacher = student * keep, teacher * keep  # zeros add nothing to a dot product or a norm
    if stage.similarity_axis == "flat":
        student, teacher = student.flatten(1), teacher.flatten(1)
    return (1 - F.cosine_similarity(student, teacher, dim=-1 if stage.similarity_axis == "flat" else -2)).mean()


def _block_similarity(student: object, teacher: object, stage: DistillStage, mask: torch.Tensor | None) -> torch.Tensor:
    """sim over a block's output tensors: one tensor for most blocks, several for those returning tuples (TNT's)."""
    pairs = [(s, t) for s, t in zip(tree_leaves(student), tree_leaves(teacher)) if isinstance(s, torch.Tensor) and s.is_floating_point()]
    return torch.stack([similarity_loss(s, t, stage, mask) for s, t in pairs]).sum()


def distill_objective(teacher: nn.Module, stage: DistillStage, blocks: Sequence[str], sites: Sequence[str], *, text: bool = False) -> Objective:
    """L = λ · reduce_l sim(Y_l, Ŷ_l) + ce_weight · task loss (eq. 4), at block or site outputs.

    `teacher_forced` feeds every student block the teacher's input to that block;
    `free_running` lets each block see the student's own activations. The task loss
    is CE, or for a text encoder (`text`) the sentence embedding's cosine to the teacher's. Only tokens both models
    still run are compared: padding, and tokens a halting teacher or student has stopped (`surgery.rewrite.halting`);
    `halting: teacher` makes a halting student stop tokens where its teacher just did.
    """
    targets = list(blocks if stage.at == "block" else sites)
    task = task_loss(stage, text)

    def objective(student: nn.Module, inputs: Inputs, labels: torch.Tensor) -> StepResult:
        with torch.no_grad(), capture_outputs(teacher, targets) as wanted, capture_inputs(teacher, blocks) as fed, capture_masks(teacher, targets) as taught:
            target = predict(teacher, inputs)
        forcing = force_inputs(student, fed) if stage.mode == "teacher_forced" else nullcontext()
        halting = following(unwrap(student), teacher) if stage.halting == "teacher" else nullcontext()
        with capture_outputs(student, targets) as got, capture_masks(student, targets) as learnt, forcing, halting:
            output = predict(student, inputs)
        padding = token_mask(inputs)
        terms = torch.stack([_block_similarity(got[p], wanted[p], stage, shared_tokens(p, padding, taught, learnt)) for p in targets])
        similarity = terms.sum() if stage.reduce == "sum" else terms.mean()
        task_term, logs = task(output, target, labels)
        loss = stage.weight * similarity + stage.ce_weight * task_term
        return StepResult(loss, {"loss": loss.item(), "sim": similarity.item(), **logs})

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


def prune_objective(stage: PruneStage, prunable: Sequence[nn.Module], teacher: nn.Module, *, text: bool = False) -> Objective:
    """Task loss + hoyer_weight · Σ Group-HS over every substitute's hidden-unit groups (paper eq. 5-6).

    The task loss is CE, or for a text encoder (`text`) the sentence embedding's cosine to `teacher`'s.
    """
    task = task_loss(stage, text)

    def objective(student: nn.Module, inputs: Inputs, labels: torch.Tensor) -> StepResult:
        task_term, logs = task(predict(student, inputs), _teacher_output(teacher, inputs, task), labels)
        return StepResult(task_term, {"loss": task_term.item(), **logs})

    return hoyer_regularised(objective, prunable, stage.hoyer_weight)


def hoyer_regularised(objective: Objective, prunable: Sequence[nn.Module], weight: float) -> Objective:
    """`objective` + weight · Σ Group-HS over `prunable`'s hidden-unit groups; the sum is logged as `hoyer`.

    One penalty for both ways of pruning the paper allows: a prune stage's task loss, or block distillation's (§3.3).
    """

    def regularised(model: nn.Module, inputs: Inputs, labels: torch.Tensor) -> StepResult:
        result = objective(model, inputs, labels)
        hoyer = torch.stack([hoyer_penalty(module) for module in prunable]).sum()
        loss = result.loss + weight * hoyer
        return StepResult(loss, {**result.logs, "loss": loss.item(), "hoyer": hoyer.item()})

    return regularised
