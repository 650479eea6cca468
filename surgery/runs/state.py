"""What the stages of one run share: the recipe, the models, the record of the surgery, the results."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from surgery.errors import SurgeryError
from surgery.models import takes_tokens
from surgery.recipe import Recipe
from surgery.rewrite.plan import Plan
from surgery.runs.record import SurgeryRecord
from surgery.runs.rundir import RunDir
from surgery.train.distributed import DistContext
from surgery.train.metrics import MetricsLog


@dataclass(frozen=True)
class RunProgress:
    """Where a run is, as every checkpoint stores it (`state.json`): enough to resume it in a fresh process."""

    stage_index: int
    complete: bool
    """The stage at `stage_index` finished; a resume starts the next one."""
    epoch: int = 0
    step: int = 0
    pruned: bool = False
    results: dict[str, Any] = field(default_factory=dict)
    record: SurgeryRecord | None = None
    """The surgery so far; None while only the teacher has been trained."""

    def to_json(self) -> dict[str, Any]:
        return {
            "stage_index": self.stage_index,
            "complete": self.complete,
            "epoch": self.epoch,
            "step": self.step,
            "pruned": self.pruned,
            "results": self.results,
            "record": self.record.to_json() if self.record else None,
        }

    @classmethod
    def from_json(cls, data: Any, source: Path) -> RunProgress:
        """The progress of `to_json`; another shape is a `SurgeryError` naming `source` and the key."""
        try:
            counters = {key: data[key] for key in ("stage_index", "epoch", "step")}
            wrong = [key for key, value in counters.items() if not isinstance(value, int) or isinstance(value, bool) or value < 0]
            if wrong or not isinstance(data["complete"], bool):
                raise SurgeryError(f"{source}: {', '.join(wrong) or 'complete'} is no count (edited?)")
            record = SurgeryRecord.from_json(data["record"], source) if data["record"] is not None else None
            return cls(data["stage_index"], data["complete"], data["epoch"], data["step"], data["pruned"], data["results"], record)
        except (KeyError, TypeError) as error:
            raise SurgeryError(f"{source}: a checkpoint's progress without a valid {error} (edited, or written by another version?)") from error


@dataclass
class RunState:
    """Mutable state of a run in progress; stages read it and write their results into it."""

    recipe: Recipe
    ctx: DistContext
    run: RunDir
    log: MetricsLog
    teacher: nn.Module
    input_size: tuple[int, ...]
    student: nn.Module | None = None
    plan: Plan | None = None
    record: SurgeryRecord | None = None
    pruned: bool = False
    results: dict[str, Any] = field(default_factory=dict)
    last_checkpoint: Path | None = None

    @property
    def text(self) -> bool:
        """The model is a text encoder: its function is a sentence embedding, not logits."""
        return takes_tokens(self.teacher)

    @property
    def block_paths(self) -> list[str]:
        """The blocks holding a replaced site: parents of the site paths, in order."""
        assert self.plan is not None
        return self.plan.block_paths

    def progress(self, stage_index: int, complete: bool, epoch: int = 0, step: int = 0) -> RunProgress:
        """Where the run is now, for a checkpoint."""
        return RunProgress(stage_index, complete, epoch, step, self.pruned, self.results, self.record)
