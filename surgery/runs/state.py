"""What the stages of one run share: the recipe, the models, the record of the surgery, the results."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from surgery.recipe import Recipe
from surgery.rewrite.plan import Plan
from surgery.runs.record import SurgeryRecord
from surgery.runs.rundir import RunDir
from surgery.train.distributed import DistContext
from surgery.train.metrics import MetricsLog


@dataclass
class RunState:
    """Mutable state of a run in progress; stages read it and write their results into it."""

    recipe: Recipe
    ctx: DistContext
    run: RunDir
    log: MetricsLog
    teacher: nn.Module
    input_size: tuple[int, int, int]
    student: nn.Module | None = None
    plan: Plan | None = None
    record: SurgeryRecord | None = None
    pruned: bool = False
    results: dict[str, Any] = field(default_factory=dict)
    last_checkpoint: Path | None = None

    @property
    def block_paths(self) -> list[str]:
        """The blocks holding a replaced site: parents of the site paths, in order."""
        assert self.plan is not None
        return self.plan.block_paths

    def progress(self, stage_index: int, complete: bool, epoch: int = 0, step: int = 0) -> dict[str, Any]:
        """The JSON a checkpoint stores about where the run is."""
        return {
            "stage_index": stage_index,
            "complete": complete,
            "epoch": epoch,
            "step": step,
            "pruned": self.pruned,
            "results": self.results,
            "record": self.record.to_json() if self.record else None,
        }
