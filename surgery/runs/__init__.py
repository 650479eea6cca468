"""Runs: the stage interpreter behind `surgery apply`, its run directory, report, and replay."""

from surgery.runs.interpreter import apply_recipe, load_run
from surgery.runs.rundir import RunDir

__all__ = ["RunDir", "apply_recipe", "load_run"]
