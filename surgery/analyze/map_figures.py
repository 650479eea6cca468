"""Figures of the dependency maps: teacher beside student, per block and per head, with their rank correlations."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from surgery.analyze.agreement import BlockAgreement, BlockMaps
from surgery.figures import pyplot, save_figure

Panel = tuple[torch.Tensor, str, str]
"""A map (N, N) or a class-token row on the patch grid (h, w), its title and its colour map."""
MAP, GRID = "magma", "viridis"


def plot_overview(maps: list[BlockMaps], agreements: list[BlockAgreement], path: Path) -> Path:
    """One row per block: site maps (teacher attention, student saliency), then cumulative attributions, then class-token rows."""
    rows = [_overview_row(m, a) for m, a in zip(maps, agreements)]
    return _grid(rows, path, "token-to-token dependency, teacher vs student (ρ: Spearman rank correlation with the teacher)")


def plot_heads(maps: BlockMaps, agreement: BlockAgreement, path: Path) -> Path:
    """One row per teacher head: its attention, the student head's forward and backward maps, and class-token rows."""
    rows = [_head_row(maps, head, agreement.heads[head] if agreement.heads else {}) for head in range(maps.teacher_heads.shape[0])]
    return _grid(rows, path, f"{maps.site}: per head (student: gradient saliency of each direction's LSTM; ρ with the teacher head)")


def _head_row(maps: BlockMaps, head: int, rho: dict[str, float]) -> list[Panel]:
    """Teacher head `head` (ρ of both student directions summed in its title), the student head's directions, class-token rows."""
    teacher = maps.teacher_heads[head]
    row = [(teacher, f"teacher head {head}: attention{_rho(rho.get('both'), 'fwd+bwd ')}", MAP)]
    for direction in ("forward", "backward"):
        student = maps.student_heads.get((head, direction))
        if student is not None:
            row.append((student, f"student head {head} {direction}{_rho(rho.get(direction))}", MAP))
    classes = (teacher, f"teacher head {head}: CLS→patch"), (maps.student_head(head), f"student head {head}: CLS→patch")
    return row + _class_rows(maps.prefix, *classes)


def _overview_row(maps: BlockMaps, agreement: BlockAgreement) -> list[Panel]:
    teacher = maps.teacher_heads.mean(0)
    row = [
        (teacher, f"{maps.site}: teacher attention", MAP),
        (maps.student, f"student saliency{_rho(agreement.attention)}", MAP),
        (maps.teacher_attribution, f"{maps.block}: teacher cumulative", MAP),
        (maps.student_attribution, f"student cumulative{_rho(agreement.attribution)}", MAP),
    ]
    classes = (maps.teacher_attribution, "teacher cumulative CLS→patch"), (maps.student_attribution, "student cumulative CLS→patch")
    return row + _class_rows(maps.prefix, *classes)


def _class_rows(prefix: int, *panels: tuple[torch.Tensor | None, str]) -> list[Panel]:
    """The class token's row of each map on the patch grid; none when there is no class token or the patches are not a square."""
    patches = [(matrix[0, prefix:], title) for matrix, title in panels if matrix is not None] if prefix else []
    side = math.isqrt(patches[0][0].numel()) if patches else 0
    return [(row.reshape(side, side), title, GRID) for row, title in patches if side * side == row.numel()]


def _grid(rows: list[list[Panel]], path: Path, title: str) -> Path:
    plt = pyplot()
    columns = max(len(row) for row in rows)
    figure, axes = plt.subplots(len(rows), columns, figsize=(2.3 * columns, 2.3 * len(rows) + 0.4), squeeze=False)
    for ax_row, row in zip(axes, rows):
        for ax, panel in zip(ax_row, row + [None] * (columns - len(row))):
            _draw(ax, panel)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return save_figure(figure, path, dpi=90)


def _draw(ax: Any, panel: Panel | None) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    if panel is None:
        ax.axis("off")
        return
    matrix, title, cmap = panel
    ax.imshow(matrix.numpy(), cmap=cmap)
    ax.set_title(title, fontsize=6.5)


def _rho(value: float | None, what: str = "") -> str:
    return "" if value is None or math.isnan(value) else f"\n{what}ρ = {value:.2f}"
