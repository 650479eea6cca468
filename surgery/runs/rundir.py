"""The run directory: what a run writes where, and the rule that nothing is overwritten without --force."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from surgery.errors import SurgeryError
from surgery.recipe.from_run import RUN_RECIPE


@dataclass(frozen=True)
class RunDir:
    """runs/<name>/ and the files in it."""

    root: Path

    @property
    def recipe(self) -> Path:
        return self.root / RUN_RECIPE

    @property
    def record(self) -> Path:
        return self.root / "surgery.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def student_weights(self) -> Path:
        return self.root / "model.safetensors"

    @property
    def teacher_weights(self) -> Path:
        return self.root / "teacher.safetensors"

    def evaluated_weights(self, row: str) -> Path:
        """The weights of the student a report row (`student`, `pruned`) measured: a run's final weights are only its last row's."""
        return self.root / "evaluated" / f"{row}.safetensors"

    def evaluated_record(self, row: str) -> Path:
        """The surgery record that rebuilds the student of `evaluated_weights(row)`."""
        return self.root / "evaluated" / f"{row}.surgery.json"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def report_json(self) -> Path:
        return self.root / "report.json"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"


def prepare_run_dir(root: Path, *, resume: bool, force: bool) -> RunDir:
    """A run directory ready to write: new, resumed, or (with force) wiped.

    Raises:
        SurgeryError: the directory holds a run and neither --resume nor --force was given,
            or --resume names a directory with no run in it.
    """
    run = check_run_dir(root, resume=resume, force=force)
    if run.recipe.exists() and not resume:
        shutil.rmtree(root)
    run.checkpoints.mkdir(parents=True, exist_ok=True)
    return run


def check_run_dir(root: Path, *, resume: bool, force: bool) -> RunDir:
    """The checks of `prepare_run_dir`, touching nothing (for the pre-flight)."""
    run = RunDir(root)
    exists = run.recipe.exists()
    if resume and not exists:
        raise SurgeryError(f"{root}: no run to resume (no {run.recipe.name}); drop --resume to start one")
    if exists and not resume and not force:
        raise SurgeryError(f"{root}: a run already exists; pass --resume to continue it or --force to replace it")
    if root.exists() and not exists and any(root.iterdir()) and not force:
        raise SurgeryError(f"{root}: directory is not empty and holds no run; choose another --out or pass --force")
    return run
