"""`surgery evaluate DIR`: rebuild a run's teacher and student from disk and measure them again."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from surgery.cli.common import JsonOption, handles_errors, print_json, stdout
from surgery.runs.evaluate import evaluate_run
from surgery.targets import resolve_target


@handles_errors
def evaluate(
    run: Annotated[Path, typer.Argument(help="A finished run directory (runs/<name>).")],
    as_json: JsonOption = False,
) -> None:
    """Replay the recorded surgery, load the safetensors weights strictly, and report top-1, params, MACs."""
    results = evaluate_run(resolve_target(str(run), accepts=("run",)).run)
    if as_json:
        print_json(results)
        return
    table = Table(box=box.SIMPLE_HEAD, title=f"{run}: re-evaluated from disk")
    for column in ("model", "top-1 (%)", "params (M)", "MACs (M)"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for name, row in results.items():
        table.add_row(name, f"{row['top1']:.2f}", f"{row['params'] / 1e6:.4f}", f"{row['macs'] / 1e6:.2f}")
    stdout.print(table)
