"""`surgery bench RUN_OR_RECIPE`: teacher vs student CPU latency in ONNX Runtime (paper appendix A.4), eager beside it."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from surgery.bench import BenchRow, BenchSettings, Optimization, Precision, bench, ratios, to_json
from surgery.cli.common import JsonOption, SetOption, handles_errors, print_json, stdout
from surgery.cli.export_cmd import TargetArgument, load_models

STUDENT = "FAR"


@handles_errors
def bench_command(
    target: TargetArgument,
    img_sizes: Annotated[list[int], typer.Option("--img-size", min=16, help="Image side in pixels; repeatable.")] = [224, 384],
    runs: Annotated[int, typer.Option("--runs", min=1, help="Timed runs per model; the median is reported.")] = 100,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Untimed runs per model first.")] = 30,
    precision: Annotated[Precision, typer.Option("--precision", help="fp32, or dynamic int8 for both models.")] = "fp32",
    optimization: Annotated[Optimization, typer.Option("--graph-opt", help="ONNX Runtime graph optimization level.")] = "all",
    pin: Annotated[bool, typer.Option("--pin/--no-pin", help="Pin the process to one core where the OS allows.")] = True,
    eager: Annotated[bool, typer.Option("--eager/--no-eager", help="Also time PyTorch eager on one thread.")] = True,
    overrides: SetOption = [],
    as_json: JsonOption = False,
) -> None:
    """Params, MACs and batch-1 latency (median, min–max) of teacher and student at each image size, and their ratio."""
    models = load_models(target, overrides)
    settings = BenchSettings(runs, warmup, precision, optimization, pin, eager, models.spec.opset)
    with tempfile.TemporaryDirectory(prefix="surgery-bench-") as workdir:
        rows = bench({models.name: models.teacher, STUDENT: models.student}, tuple(img_sizes), settings, Path(workdir))
    if as_json:
        print_json(to_json(rows, settings, models.name))
        return
    stdout.print(latency_table(rows, settings))
    for ratio in ratios(rows, models.name):
        eager_ratio = f", eager ×{ratio['eager']:.2f}" if ratio["eager"] is not None else ""
        stdout.print(f"{ratio['model']}/{ratio['baseline']} at {ratio['img_size']} px: ONNX Runtime ×{ratio['onnx']:.2f}{eager_ratio}", highlight=False)


def latency_table(rows: list[BenchRow], settings: BenchSettings) -> Table:
    title = f"CPU latency, batch 1, 1 thread, {settings.precision}, median of {settings.runs} after {settings.warmup} warm-up (ms)"
    table = Table(box=box.SIMPLE_HEAD, title=title)
    for column in ("model", "px", "params (M)", "MACs (G)", "ORT median", "ORT min–max", "eager median", "eager min–max"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in rows:
        eager = (f"{row.eager.median:.2f}", f"{row.eager.min:.2f}–{row.eager.max:.2f}") if row.eager else ("–", "–")
        table.add_row(
            row.model, str(row.img_size), f"{row.params / 1e6:.3f}", f"{row.macs / 1e9:.3f}",
            f"{row.onnx.median:.2f}", f"{row.onnx.min:.2f}–{row.onnx.max:.2f}", *eager,
        )
    return table
