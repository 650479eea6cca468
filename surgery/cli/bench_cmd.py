"""`surgery bench RUN_OR_RECIPE`: teacher vs student CPU latency in ONNX Runtime (paper appendix A.4), eager beside it.

Image models are timed at image sizes (`--img-size`) and batches (`--batch`), text encoders (`model.source:
transformers`) at sequence lengths (`--seq-len`), one sequence at a time; on one thread unless `--threads` says
otherwise. The table names the batch, the threads, the precision, the CPU and its vector ISA.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.table import Table

from surgery.cli.common import JsonOption, SetOption, TargetArgument, handles_errors, print_json, stderr, stdout
from surgery.deploy.options import Optimization, Precision
from surgery.errors import SurgeryError

if TYPE_CHECKING:
    from surgery.deploy.bench import BenchSettings, Row
    from surgery.deploy.export import Models
    from surgery.deploy.int8 import PrecisionAccuracy
    from surgery.targets import Target


IMAGE_SIZES, TEXT_LENGTHS = (224, 384), (128, 256, 512)
"""What is timed when no --img-size (--seq-len) is given: the paper's two image sizes; three sequence lengths."""


@handles_errors
def bench_command(
    target: TargetArgument,
    img_sizes: Annotated[list[int] | None, typer.Option("--img-size", min=8, help="Image side in pixels; repeatable (default 224 and 384).")] = None,
    seq_lens: Annotated[
        list[int] | None, typer.Option("--seq-len", min=1, help="Text encoders: tokens per sequence; repeatable (default 128, 256 and 512).")
    ] = None,
    batches: Annotated[
        list[int] | None, typer.Option("--batch", min=1, help="Image models: images per inference; repeatable (default 1).")
    ] = None,
    threads: Annotated[
        str, typer.Option("--threads", help="ONNX Runtime intra-op and PyTorch threads: N, or 0 / all for every core (default 1, appendix A.4).")
    ] = "1",
    runs: Annotated[int, typer.Option("--runs", min=1, help="Timed runs per model; the median is reported.")] = 100,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Untimed runs per model first.")] = 30,
    precision: Annotated[Precision, typer.Option("--precision", help="fp32, or dynamic int8 for both models.")] = "fp32",
    optimization: Annotated[Optimization, typer.Option("--graph-opt", help="ONNX Runtime graph optimization level.")] = "all",
    pin: Annotated[bool, typer.Option("--pin/--no-pin", help="On one thread, pin the process to one core where the OS allows.")] = True,
    eager: Annotated[bool, typer.Option("--eager/--no-eager", help="Also time PyTorch eager on as many threads.")] = True,
    run: Annotated[Path | None, typer.Option("--run", help="Take trained weights from this run (same as giving the run as target).")] = None,
    keep_ratio: Annotated[
        float | None, typer.Option("--keep-ratio", min=0.0, max=1.0, help="Emulate pruning: keep this share of every LSTM's hidden units.")
    ] = None,
    overrides: SetOption = [],
    as_json: JsonOption = False,
) -> None:
    """Params and MACs per image, and latency per batch (median, min–max) of teacher and student at each image size
    and batch (a text encoder: sequence length, batch 1, every token real), and their ratio.

    With an image run and `--precision int8`, also the top-1 change int8 brings to each model on the run's validation split.
    """
    from surgery.deploy.bench import STUDENT, BenchSettings, bench, bench_sequences, ratios, thread_count, to_json
    from surgery.deploy.int8 import int8_accuracy
    from surgery.runs.trained import load_models
    from surgery.targets import resolve_target

    resolved = _weights_from(resolve_target(target, overrides), run, overrides)
    if resolved.run and keep_ratio is not None:
        raise SurgeryError("--keep-ratio emulates pruned shapes on random weights; a run brings its own shapes")
    text = resolved.recipe.model.source == "transformers"
    sizes, batch_sizes, thread_total = _sizes(text, img_sizes, seq_lens), _batches(text, batches), thread_count(threads)
    models = load_models(resolved)
    if keep_ratio is not None:
        models = _emulate_pruning(models, keep_ratio)
    settings = BenchSettings(runs, warmup, precision, optimization, pin, eager, models.spec.opset, thread_total)
    compared = {models.name: models.teacher, STUDENT: models.student}
    measures_accuracy = resolved.run is not None and precision == "int8"
    if measures_accuracy and text:
        stderr.print("int8 top-1 is measured for image classifiers; a text encoder's int8 latency only", style="yellow", highlight=False)
    with tempfile.TemporaryDirectory(prefix="surgery-bench-") as workdir:
        if text:
            rows: list[Row] = list(bench_sequences(compared, sizes, settings, Path(workdir)))
        else:
            rows = list(bench(compared, sizes, settings, Path(workdir), batch_sizes))
        accuracy = int8_accuracy(resolved.recipe, models, Path(workdir)) if measures_accuracy and not text else []
    if as_json:
        print_json({**to_json(rows, settings, models.name), "accuracy": [a.to_json() for a in accuracy]})
        return
    stdout.print(latency_table(rows, settings))
    for result in accuracy:
        stdout.print(_accuracy_line(result), highlight=False)
    for ratio in ratios(rows, models.name):
        eager_ratio = f", eager ×{ratio['eager']:.2f}" if ratio["eager"] is not None else ""
        where = f"{ratio['tokens']} tokens" if text else f"{ratio['img_size']} px, batch {ratio['batch']}"
        stdout.print(f"{ratio['model']}/{ratio['baseline']} at {where}: ONNX Runtime ×{ratio['onnx']:.2f}{eager_ratio}", highlight=False)


def _sizes(text: bool, img_sizes: list[int] | None, seq_lens: list[int] | None) -> tuple[int, ...]:
    """Image sizes of an image model, sequence lengths of a text encoder; the other kind's option is refused."""
    if text and img_sizes:
        raise SurgeryError("--img-size: a text encoder is timed at sequence lengths; give --seq-len N (default 128, 256 and 512)")
    if not text and seq_lens:
        raise SurgeryError("--seq-len: an image model is timed at image sizes; give --img-size PIXELS (default 224 and 384)")
    return tuple(seq_lens or TEXT_LENGTHS) if text else tuple(img_sizes or IMAGE_SIZES)


def _batches(text: bool, batches: list[int] | None) -> tuple[int, ...]:
    """The batches to time, each once, in the order given; a text encoder is timed on one sequence at a time."""
    if text and batches and set(batches) != {1}:
        raise SurgeryError("--batch: a text encoder is timed on one sequence at a time (every token real); batches are for image models")
    return tuple(dict.fromkeys(batches or [1]))


_CELL_COLUMNS = {"img_size": "px", "batch": "batch", "tokens": "tokens"}


def latency_table(rows: list[Row], settings: BenchSettings) -> Table:
    from surgery.deploy.bench import cell_of
    from surgery.deploy.machine import machine

    where = machine()
    caption = f"{where['cpu']}, {where['isa']}, ONNX Runtime {where['onnxruntime']}"
    table = Table(box=box.SIMPLE_HEAD, title=_title(rows, settings), caption=caption)
    cells = list(cell_of(rows[0])) if rows else ["img_size", "batch"]
    macs = "MACs (G)" if "tokens" in cells else "MACs/image (G)"
    for column in ("model", *(_CELL_COLUMNS[cell] for cell in cells), "params (M)", macs, "ORT median", "ORT min–max", "eager median", "eager min–max"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in rows:
        eager = (f"{row.eager.median:.2f}", f"{row.eager.min:.2f}–{row.eager.max:.2f}") if row.eager else ("–", "–")
        table.add_row(
            row.model, *map(str, cell_of(row).values()), f"{row.params / 1e6:.3f}", f"{row.macs / 1e9:.3f}",
            f"{row.onnx.median:.2f}", f"{row.onnx.min:.2f}–{row.onnx.max:.2f}", *eager,
        )
    return table


def _title(rows: list[Row], settings: BenchSettings) -> str:
    """What the numbers are: per call on a batch of how many, on how many threads, at which precision, over how many runs."""
    batches = sorted({getattr(row, "batch", 1) for row in rows}) or [1]
    threads = f"{settings.threads} thread" + ("s" if settings.threads > 1 else "")
    return (
        f"CPU latency per call, batch {', '.join(map(str, batches))}, {threads}, {settings.precision}, "
        f"median of {settings.runs} after {settings.warmup} warm-up (ms)"
    )


def _weights_from(target: Target, run: Path | None, overrides: list[str]) -> Target:
    """What is benched: the target, or with `--run` that run, which must have trained the target's model."""
    from surgery.targets import resolve_target

    if run is None:
        return target
    if target.run is not None:
        raise SurgeryError(f"{target.text} is a run directory already; give --run only with a recipe")
    trained = resolve_target(str(run), overrides, accepts=("run",))
    expected, found = target.recipe.model.name, trained.recipe.model.name
    if target.kind == "recipe" and expected != found:
        raise SurgeryError(f"--run {run} trained {found}, but {target.text} names {expected}")
    return trained


def _emulate_pruning(models: Models, keep_ratio: float) -> Models:
    from far_modules import shrink_uniformly

    try:
        student = shrink_uniformly(copy.deepcopy(models.student), keep_ratio)
    except ValueError as error:
        raise SurgeryError(f"--keep-ratio: {error}") from error
    return dataclasses.replace(models, student=student.eval())


def _accuracy_line(result: PrecisionAccuracy) -> str:
    return f"{result.model} top-1 in ONNX Runtime: fp32 {result.fp32_top1:.2f} %, int8 {result.int8_top1:.2f} % ({result.change:+.2f})"
