"""Structured pruning of hidden units with DeepHoyer's Group-HS (paper §3.3, eq. 5-6).

A `Prunable` module exposes its hidden units as `UnitGroup`s, one per head and
direction. The pipeline is plan, then act: `hoyer_penalty` regularises during
training, `keep_masks` decides which units stay (no mutation), and the module's
`shrink` returns a new, physically smaller module. `config`/`from_config` let a
run rebuild the shrunk shape before loading its weights strictly (replay).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

Direction = Literal["forward", "backward"]
DIRECTIONS: tuple[Direction, Direction] = ("forward", "backward")
UnitKey = tuple[int, Direction]
"""(head, direction): the scope inside which units compete and are pruned."""


@dataclass(frozen=True)
class UnitGroup:
    """The hidden units of one head and direction, and the squared norms of their composite rows.

    `squared_norms` reads the live parameters on every call, so a group stays
    valid across optimiser steps.
    """

    head: int
    direction: Direction
    size: int
    squared_norms: Callable[[], Tensor]

    @property
    def key(self) -> UnitKey:
        return (self.head, self.direction)

    def norms(self) -> Tensor:
        """Differentiable L2 norm of each unit's weight group, shape (size,)."""
        return safe_sqrt(self.squared_norms())


@runtime_checkable
class Prunable(Protocol):
    """A module whose hidden units can be regularised, selected and physically removed."""

    def unit_groups(self) -> list[UnitGroup]: ...

    def shrink(self, keep: Mapping[UnitKey, Tensor]) -> nn.Module: ...

    def config(self) -> dict[str, Any]: ...

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> nn.Module: ...


def safe_sqrt(squares: Tensor) -> Tensor:
    """sqrt whose gradient is 0, not inf/NaN, where the input is exactly 0 (an already-dead unit)."""
    positive = squares > 0
    return torch.where(positive, torch.where(positive, squares, 1.0).sqrt(), 0.0)


def group_hs(norms: Tensor, eps: float = 1e-12) -> Tensor:
    """DeepHoyer's Group-HS, (Σ n)² / Σ n²: scale invariant, from 1 (one live group) to len(norms).

    `eps` keeps the all-zero case finite (value and gradient 0).
    """
    return norms.sum().square() / (norms.square().sum() + eps)


def hoyer_penalty(module: Prunable) -> Tensor:
    """Sum of Group-HS over the module's unit groups, each head and direction on its own (eq. 6)."""
    return torch.stack([group_hs(group.norms()) for group in module.unit_groups()]).sum()


def prunable_modules(model: nn.Module) -> dict[str, Prunable]:
    """Every `Prunable` submodule of `model` by its path, e.g. to sum their penalties."""
    return {name: module for name, module in model.named_modules() if isinstance(module, Prunable)}


@torch.no_grad()
def keep_masks(module: Prunable, threshold: float) -> dict[UnitKey, Tensor]:
    """Keep the units whose group norm exceeds `threshold`, per head and direction.

    Each head and direction keeps its largest unit even when all fall below the
    threshold, because `nn.LSTM` cannot be built with hidden size 0. When any unit
    passes the threshold the largest is among them, so this changes nothing else.
    """
    masks = {}
    for group in module.unit_groups():
        norms = group.norms()
        mask = norms > threshold
        mask[norms.argmax()] = True
        masks[group.key] = mask
    return masks


@torch.no_grad()
def uniform_keep(module: Prunable, ratio: float) -> dict[UnitKey, Tensor]:
    """Keep the first round(ratio · h) units (at least one) of every head and direction.

    Which units stay does not change shapes, so this emulates a pruned structure
    for latency and cost studies without training; `keep_masks` is the learned choice.
    """
    if not 0 < ratio <= 1:
        raise ValueError(f"keep ratio must be in (0, 1], got {ratio}")
    return {g.key: torch.arange(g.size) < max(1, round(ratio * g.size)) for g in module.unit_groups()}


def shrink_uniformly(model: nn.Module, ratio: float) -> nn.Module:
    """`model` with every `Prunable` submodule replaced, in place, by its `uniform_keep` shrink."""
    modules = prunable_modules(model)
    if not modules:
        raise ValueError(f"{type(model).__name__} has no prunable substitute to shrink")
    for path, module in modules.items():
        model.set_submodule(path, module.shrink(uniform_keep(module, ratio)))
    return model


def check_keep(groups: Sequence[UnitGroup], keep: Mapping[UnitKey, Tensor], device: torch.device) -> dict[UnitKey, Tensor]:
    """`keep` as boolean masks on `device`, one per group; raises ValueError before any weight is touched.

    Every group must be named, with a mask of its size that keeps at least one unit.
    """
    sizes = {group.key: group.size for group in groups}
    if set(keep) != set(sizes):
        raise ValueError(f"keep names {list(keep)}, the module's unit groups are {list(sizes)}")
    masks = {key: torch.as_tensor(keep[key], device=device) for key in sizes}
    for key, mask in masks.items():
        if mask.dtype != torch.bool or mask.shape != (sizes[key],) or not mask.any():
            raise ValueError(f"keep{key} must be {sizes[key]} booleans with at least one True, got {mask.dtype} {tuple(mask.shape)}")
    return masks


def unit_counts(module: Prunable) -> dict[UnitKey, int]:
    """Hidden units per head and direction."""
    return {group.key: group.size for group in module.unit_groups()}


@dataclass(frozen=True)
class PruningReport:
    """Units before and after pruning per (head, direction): the data behind the kept-units heatmap."""

    before: Mapping[UnitKey, int]
    after: Mapping[UnitKey, int]

    def fraction(self, key: UnitKey) -> float:
        return self.after[key] / self.before[key]

    @property
    def overall(self) -> float:
        return sum(self.after.values()) / sum(self.before.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: the overall kept fraction and one row per head and direction, in module order."""
        rows = [
            {"head": key[0], "direction": key[1], "before": self.before[key], "after": self.after[key], "kept": self.fraction(key)}
            for key in self.before
        ]
        return {"kept": self.overall, "units": rows}


def pruning_report(before: Mapping[UnitKey, int], after: Mapping[UnitKey, int]) -> PruningReport:
    """Compare unit counts (see `unit_counts`); the two must name the same groups and only shrink."""
    if set(before) != set(after) or any(after[key] > before[key] for key in before):
        raise ValueError(f"unit counts do not describe a pruning: before {dict(before)}, after {dict(after)}")
    return PruningReport(dict(before), dict(after))
