"""Runs: the stage interpreter behind `surgery apply`, its run directory, report, and replay (`surgery.runs.replay`)."""

from surgery.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "RunDir": "surgery.runs.rundir",
        "SurgeryRecord": "surgery.runs.record",
        "apply_recipe": "surgery.runs.interpreter",
        "load_evaluated": "surgery.runs.replay",
        "load_run": "surgery.runs.replay",
    },
)
__all__ = ["RunDir", "SurgeryRecord", "apply_recipe", "load_evaluated", "load_run"]
