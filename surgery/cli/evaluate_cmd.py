"""`surgery evaluate DIR`: rebuild a run's teacher and student from disk and measure them again."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from surgery.cli.common import JsonOption, handles_errors, print_json, stdout


@handles_errors
def evaluate(
    run: Annotated[Path, typer.Argument(help="A finished run directory (runs/<name>).")],
    as_json: JsonOption = False,
) -> None:
    """Replay the recorded surgery, load the safetensors weights strictly, and report top-1 (a text encoder: embedding
    cosine, probe top-1, neighbour overlap), params, MACs."""
    from surgery.runs.evaluate import evaluate_run
    from surgery.runs.report import COLUMNS
    from surgery.targets import resolve_target

    results = evaluate_run(resolve_target(str(run), accepts=("run",)).run)
    if as_json:
        print_json(results)
        return
    table = Table(box=box.SIMPLE_HEAD, title=f"{run}: re-evaluated from disk")
    columns = [column for column in COLUMNS if column[0] in results["student"]]
    table.add_column("model")
    for _, heading, *_ in columns:
        table.add_column(heading, justify="right")
    for name, row in results.items():
        table.add_row(name, *(form.format(row[key] * (scale[0] if scale else 1)) if key in row else "" for key, _, form, *scale in columns))
    stdout.print(table)

