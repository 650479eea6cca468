"""Runs: the stage interpreter behind `surgery apply`, its run directory, report, and replay."""

from surgery.runs.interpreter import apply_recipe
from surgery.runs.record import SurgeryRecord
from surgery.runs.replay import load_run, replay
from surgery.runs.rundir import RunDir

__all__ = ["RunDir", "SurgeryRecord", "apply_recipe", "load_run", "replay"]
