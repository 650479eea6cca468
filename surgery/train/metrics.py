"""Run metrics: one JSON object per line in `metrics.jsonl` (rank 0 only), optionally TensorBoard."""

from __future__ import annotations

import json
from pathlib import Path

from surgery.errors import SurgeryError


class MetricsLog:
    """Appends step and epoch records; on resume, drops records the restored checkpoint had not reached."""

    def __init__(self, path: Path | None, tensorboard_dir: Path | None = None) -> None:
        self.path = path
        self.writer = _tensorboard(tensorboard_dir) if tensorboard_dir else None

    def write(self, record: dict[str, object]) -> None:
        if self.path is None:
            return
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.writer is not None:
            self._to_tensorboard(record)

    def truncate_after(self, stage_index: int, step: int) -> None:
        """Keep records of earlier stages and of this stage up to `step` (a resumed run repeats the rest)."""
        if self.path is None or not self.path.exists():
            return
        kept = [line for line in self.path.read_text().splitlines() if _before(json.loads(line), stage_index, step)]
        self.path.write_text("".join(f"{line}\n" for line in kept))

    def _to_tensorboard(self, record: dict[str, object]) -> None:
        prefix = f"{record['stage']}/{record['kind']}"
        for key, value in record.items():
            if isinstance(value, float):
                self.writer.add_scalar(f"{prefix}/{key}", value, record["step"])


def _before(record: dict, stage_index: int, step: int) -> bool:
    return record["stage_index"] < stage_index or (record["stage_index"] == stage_index and record["step"] <= step)


def _tensorboard(directory: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:
        raise SurgeryError("--tensorboard needs the tensorboard package: pip install tensorboard") from error
    return SummaryWriter(str(directory))
