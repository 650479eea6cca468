"""How close the student's token dependencies are to the teacher's: Spearman rank correlation of their maps.

Attention probabilities and gradient norms live on different scales (the
paper's "intensity scaling differences"), so maps are compared by rank: ρ = 1
when the student orders every (output, input) token pair as the teacher does,
0 when the orders are unrelated. Per block: the teacher's mean attention
against the student's saliency at the site; the two cumulative attributions,
over all token pairs and without each token's dependency on itself (the
residual path makes that diagonal the largest entry of both); and, where teacher and student have the same number of heads,
each teacher head against the student head of the same index (forward,
backward, and both directions summed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from scipy.stats import spearmanr

from surgery.analyze.dependency import HeadKey, normalise_rows

DIRECTIONS = ("forward", "backward")


@dataclass(frozen=True)
class BlockMaps:
    """Every map of one block that holds a replaced site; each (N, N), rows sum to one."""

    block: str
    site: str
    teacher_heads: torch.Tensor = field(repr=False)
    """(H, N, N) attention probabilities per head, averaged over the images."""
    student: torch.Tensor = field(repr=False)
    """The whole substitute's saliency at the site."""
    student_heads: dict[HeadKey, torch.Tensor] = field(repr=False)
    """(head, direction) -> saliency of that recurrence; empty for substitutes without heads."""
    teacher_attribution: torch.Tensor = field(repr=False)
    student_attribution: torch.Tensor = field(repr=False)
    prefix: int = 0
    """Leading non-patch tokens (the class token)."""

    def student_head(self, head: int) -> torch.Tensor | None:
        """Both directions of `head` summed, rows normalised; None when the student has no such head."""
        maps = [self.student_heads[(head, d)] for d in DIRECTIONS if (head, d) in self.student_heads]
        return normalise_rows(sum(maps)) if maps else None


@dataclass(frozen=True)
class BlockAgreement:
    """Rank correlations between teacher and student maps of one block."""

    block: str
    site: str
    attention: float
    """Teacher mean attention vs student saliency at the site."""
    attribution: float
    """Teacher vs student cumulative attribution from the patch embedding to the block output."""
    attribution_off_diagonal: float
    """The same without the diagonal: how alike the dependencies between different tokens are."""
    heads: list[dict[str, float]]
    """Per teacher head: ρ with the student head of the same index, `forward`, `backward` and `both`; empty where heads differ in count."""

    def to_json(self) -> dict[str, object]:
        """Plain data; an undefined ρ (a constant map) becomes null."""
        heads = [{name: _finite(value) for name, value in row.items()} for row in self.heads]
        numbers = {name: _finite(getattr(self, name)) for name in ("attention", "attribution", "attribution_off_diagonal")}
        return {"block": self.block, "site": self.site, **numbers, "heads": heads}


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's ρ between two maps of the same shape, over all entries (ties share their mean rank); NaN if one is constant.

    Example:
        >>> rank_correlation(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[0.1, 0.2], [0.3, 9.0]]))
        1.0
    """
    if a.shape != b.shape:
        raise ValueError(f"maps of shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be compared")
    if a.flatten().unique().numel() < 2 or b.flatten().unique().numel() < 2:
        return math.nan
    return float(spearmanr(a.flatten().double().numpy(), b.flatten().double().numpy()).statistic)


def compare(maps: BlockMaps) -> BlockAgreement:
    """The correlations of one block's maps."""
    attention = rank_correlation(maps.teacher_heads.mean(0), maps.student)
    teacher, student = maps.teacher_attribution, maps.student_attribution
    others = ~torch.eye(teacher.shape[0], dtype=torch.bool)
    attribution = rank_correlation(teacher, student), rank_correlation(teacher[others], student[others])
    return BlockAgreement(maps.block, maps.site, attention, *attribution, _head_correlations(maps))


def _head_correlations(maps: BlockMaps) -> list[dict[str, float]]:
    heads = maps.teacher_heads.shape[0]
    if {head for head, _ in maps.student_heads} != set(range(heads)):
        return []
    rows = []
    for head, teacher in enumerate(maps.teacher_heads):
        row = {d: rank_correlation(teacher, maps.student_heads[(head, d)]) for d in DIRECTIONS if (head, d) in maps.student_heads}
        rows.append({**row, "both": rank_correlation(teacher, maps.student_head(head))})
    return rows


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)
