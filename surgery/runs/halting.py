"""Which teacher halts tokens, and from when: every path that builds or rebuilds a run's models asks here.

A teacher halts from the start when its model section says so (`model.halting`: weights trained with halting, or a
transfer from a run whose teacher halted), else from its first halt stage on. The weights a run saves are the same
either way (`HaltingBlocks` keeps the block names), so only the recipe tells a rebuilt teacher to halt.
"""

from __future__ import annotations

from torch import nn

from surgery.recipe import HaltingGate, HaltStage, Recipe
from surgery.rewrite.halting import HaltingBlocks, install_halting


def halting_gate(recipe: Recipe, stages: int | None = None) -> HaltingGate | None:
    """The gate of the last halt stage among the first `stages` (all when None; a halt stage is a gate), else the
    model's own, else None."""
    halts = [stage for stage in recipe.stages[:stages] if isinstance(stage, HaltStage)]
    return halts[-1] if halts else recipe.model.halting


def restore_halting(recipe: Recipe, teacher: nn.Module, size: tuple[int, ...], stages: int | None = None) -> HaltingBlocks | None:
    """Give `teacher` the halting `halting_gate` finds after `stages` stages (all when None); None where it does not halt."""
    gate = halting_gate(recipe, stages)
    return install_halting(teacher, gate, size) if gate is not None else None
