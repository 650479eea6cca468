"""Evaluation: top-1 accuracy and per-block cosine fidelity of student to teacher, summed over ranks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from surgery.train.capture import capture_outputs
from surgery.train.distributed import DistContext, reduce_sum


@torch.no_grad()
def top1(model: nn.Module, loader: DataLoader, ctx: DistContext) -> float:
    """Top-1 accuracy in percent over the whole validation set."""
    model.eval()
    totals = torch.zeros(2, dtype=torch.float64)
    for images, labels in loader:
        logits = model(images.to(ctx.device))
        totals += torch.tensor([(logits.argmax(-1).cpu() == labels).sum().item(), labels.numel()], dtype=torch.float64)
    correct, seen = reduce_sum(totals, ctx).tolist()
    return 100.0 * correct / max(seen, 1)


@torch.no_grad()
def block_fidelity(teacher: nn.Module, student: nn.Module, blocks: Sequence[str], loader: DataLoader, ctx: DistContext) -> dict[str, float]:
    """Mean cosine similarity between teacher and student outputs of each block, per token."""
    teacher.eval()
    student.eval()
    totals = torch.zeros(len(blocks) + 1, dtype=torch.float64)
    for images, _ in loader:
        images = images.to(ctx.device)
        with capture_outputs(teacher, blocks) as wanted, capture_outputs(student, blocks) as got:
            teacher(images)
            student(images)
        cosines = [F.cosine_similarity(got[b], wanted[b], dim=-1).sum().item() for b in blocks]
        totals += torch.tensor([*cosines, wanted[blocks[0]].shape[:-1].numel()], dtype=torch.float64)
    *sums, tokens = reduce_sum(totals, ctx).tolist()
    return {block: value / max(tokens, 1) for block, value in zip(blocks, sums)}
