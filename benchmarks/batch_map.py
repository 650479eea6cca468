"""Issue 15's batch × image size map: FAR-Tiny / DeiT-Tiny latency in ONNX Runtime on this CPU.

An LSTM step multiplies each image's hidden state by W_hh; at batch B it reads W_hh once for B images, so
batching should help the recurrences more than attention, whose work grows with the square of the tokens.
This maps the ratio over batch × image size, fp32 and dynamic int8, unpruned FAR-Tiny and FAR-Tiny† (half of
every LSTM's hidden units kept), on one thread (appendix A.4) and on every core.

Random weights (latency depends on shapes only; models as `benchmarks/table2.py` builds them). Each (size,
batch) cell exports the three models once at that batch (parity-checked, batch axis fixed) and quantizes them
once; each precision × threads then times the three alternated run by run (`surgery.deploy.bench`). A cell
stops after `--cell-seconds` of timed rounds, judged on the last warm-up round, with `--min-runs` to `--runs`
rounds. Writes OUT.json (raw), OUT.md (tables) and OUT.png (heatmaps). `--explain` measures instead what the map
is explained by: this core's caches and L2 read rate, one FAR LSTM's time per recurrent step against the batch, and
attention's N² share of a block's MACs.

    python -m benchmarks.batch_map --out benchmarks/batch_map          # from the repository root
    python -m benchmarks.batch_map --render-only --out benchmarks/batch_map
    python -m benchmarks.batch_map --explain
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import onnxruntime as ort
import torch
from matplotlib.colors import LogNorm
from rich.console import Console
from rich.progress import Progress
from torch import nn

from benchmarks.lstm_layouts import cache_bandwidth
from benchmarks.table2 import scale_models
from surgery.deploy.bench import Timing, available_cores, batch_runner, cpu_threads, ort_session, quantize_int8, resize, thread_count, time_alternating
from surgery.deploy.export import INPUT, export_onnx
from surgery.deploy.machine import machine
from surgery.measure.counting import count
from surgery.recipe.schema import ExportSpec

BASELINE = "DeiT-Tiny"
CHANNELS = 3
TINY = {"dim": 192, "heads": 3, "depth": 12, "patch": 16}
"""DeiT-Tiny's shape, which FAR-Tiny keeps."""


@dataclass(frozen=True)
class Grid:
    """What the map spans."""

    sizes: tuple[int, ...]
    batches: tuple[int, ...]
    precisions: tuple[str, ...]
    threads: tuple[int, ...]


@dataclass(frozen=True)
class Budget:
    """How long each cell is timed: warm-up rounds, then rounds until `cell_seconds`, between `min_runs` and `runs`."""

    runs: int
    min_runs: int
    warmup: int
    cell_seconds: float

    def rounds(self, seconds_per_round: float) -> int:
        return max(self.min_runs, min(self.runs, math.floor(self.cell_seconds / seconds_per_round)))


@dataclass(frozen=True)
class Cell:
    """One model's latency per call (the whole batch) at one size, batch, precision and thread count."""

    model: str
    img_size: int
    batch: int
    precision: str
    threads: int
    runs: int
    onnx: Timing
    seconds: tuple[float, ...] = ()
    """Every timed run, in order: round i of every model of the cell ran back to back."""


def time_cell(runners: dict[str, Callable[[], object]], budget: Budget) -> dict[str, list[float]]:
    """Warm-up rounds, the last one timed to size the budget, then the timed rounds; models alternated in each."""
    probe = time_alternating(runners, runs=1, warmup=budget.warmup)
    return time_alternating(runners, budget.rounds(sum(times[0] for times in probe.values())), warmup=0)


def export_cell(models: dict[str, nn.Module], size: int, batch: int, workdir: Path) -> dict[str, dict[str, Path]]:
    """Every model exported at `batch` images of `size` px, fp32 and int8: {model: {precision: path}}."""
    files = {}
    for name, model in models.items():
        fp32 = export_onnx(model, (CHANNELS, size, size), workdir / f"{name}-{size}-b{batch}.onnx", ExportSpec(dynamic_batch=False), force=True, batch=batch)
        files[name] = {"fp32": fp32.path, "int8": quantize_int8(fp32.path)}
    return files


def measure_cell(files: dict[str, dict[str, Path]], size: int, batch: int, precision: str, threads: int, budget: Budget) -> list[Cell]:
    """The models of one cell timed alternately on `threads` threads (pinned to one core when one)."""
    with cpu_threads(threads, pin=True):
        runners = {name: batch_runner(ort_session(paths[precision], "all", threads), (CHANNELS, size, size), batch) for name, paths in files.items()}
        times = time_cell(runners, budget)
    return [Cell(name, size, batch, precision, threads, len(seconds), Timing.of(seconds), tuple(seconds)) for name, seconds in times.items()]


def measure(models: dict[str, nn.Module], grid: Grid, budget: Budget, console: Console) -> list[Cell]:
    """The whole map, one (size, batch) cell's exports at a time, with a progress bar and one log line per timed cell."""
    cells: list[Cell] = []
    with Progress(console=console) as progress, tempfile.TemporaryDirectory(prefix="batch-map-") as scratch:
        task = progress.add_task("batch × size map", total=len(grid.sizes) * len(grid.batches) * len(grid.precisions) * len(grid.threads))
        for size in grid.sizes:
            resized = {name: resize(model, size) for name, model in models.items()}
            for batch in grid.batches:
                workdir = Path(scratch) / f"{size}-{batch}"
                progress.console.log(f"exporting {size} px, batch {batch}")
                with cpu_threads(1, pin=False):  # exports need no more; on two threads of the shared VM they took 2.5 to 55 s each
                    files = export_cell(resized, size, batch, workdir)
                for precision, threads in itertools.product(grid.precisions, grid.threads):
                    measured = measure_cell(files, size, batch, precision, threads, budget)
                    cells += measured
                    progress.console.log(_progress_line(measured))
                    progress.advance(task)
                shutil.rmtree(workdir)
    return cells


def _progress_line(cells: list[Cell]) -> str:
    first, base = cells[0], next(c for c in cells if c.model == BASELINE).onnx.median
    timings = ", ".join(f"{c.model} {c.onnx.median:.1f} ({c.onnx.min:.1f}–{c.onnx.max:.1f}) ms ×{c.onnx.median / base:.2f}" for c in cells)
    return f"{first.img_size} px, batch {first.batch}, {first.precision}, {first.threads} thread(s), {first.runs} runs: {timings}"


def model_counts(models: dict[str, nn.Module], sizes: Iterable[int]) -> dict[str, dict[str, float]]:
    """Params (M) and GMACs per image at each size, per model."""
    out: dict[str, dict[str, float]] = {}
    for name, model in models.items():
        out[name] = {"params_m": sum(p.numel() for p in model.parameters()) / 1e6}
        for size in sizes:
            out[name][f"gmacs_{size}"] = count(resize(model, size), (CHANNELS, size, size)).macs / 1e9
    return out


def ratio(cells: list[Cell], model: str, size: int, batch: int, precision: str, threads: int) -> float:
    at = {c.model: c.onnx.median for c in cells if (c.img_size, c.batch, c.precision, c.threads) == (size, batch, precision, threads)}
    return at[model] / at[BASELINE]


def crossover(cells: list[Cell], model: str, size: int, precision: str, threads: int) -> str:
    """The smallest batch at which `model` is faster than the baseline, or that it never is, with its best ratio."""
    batches = sorted({c.batch for c in cells})
    ratios = {b: ratio(cells, model, size, b, precision, threads) for b in batches}
    winning = [b for b in batches if ratios[b] < 1]
    if winning:
        return f"faster from batch {winning[0]} (×{ratios[winning[0]]:.2f})"
    best = min(ratios, key=ratios.get)
    return f"not faster up to batch {batches[-1]} (best ×{ratios[best]:.2f} at batch {best})"


def markdown(report: dict) -> str:
    """One table per precision × threads: absolute ms (median, min–max) per call and the ratios; the crossovers under it."""
    cells, grid, where, models = _cells(report), _grid(report), report["machine"], list(report["models"])
    lines = [
        f"Measured {report['date']} on {where['cpu']}, {where['isa']}, ONNX Runtime {where['onnxruntime']}; "
        f"{report['cores']} cores available; wall time {report['wall_s'] / 60:.1f} min. Budget: {_budget_text(report['budget'])}.",
        "",
        "| model | params (M) | " + " | ".join(f"GMACs/image {s}" for s in grid.sizes) + " |",
        "|---" * (2 + len(grid.sizes)) + "|",
    ]
    lines += [f"| {m} | {v['params_m']:.2f} | " + " | ".join(f"{v[f'gmacs_{s}']:.2f}" for s in grid.sizes) + " |" for m, v in report["models"].items()]
    for precision, threads in itertools.product(grid.precisions, grid.threads):
        lines += ["", f"### {precision}, {threads} thread{'s' if threads > 1 else ''}", "", _table(cells, models, grid, precision, threads), ""]
        lines += [f"- {m} vs {BASELINE} at {s} px: {crossover(cells, m, s, precision, threads)}" for m in models[1:] for s in grid.sizes]
    return "\n".join(lines) + "\n"


def _cells(report: dict) -> list[Cell]:
    return [Cell(**{**cell, "onnx": Timing(**cell["onnx"])}) for cell in report["cells"]]


def _grid(report: dict) -> Grid:
    return Grid(**{key: tuple(values) for key, values in report["grid"].items()})


def _budget_text(budget: dict) -> str:
    return f"{budget['warmup']} warm-up rounds, then rounds for {budget['cell_seconds']:g} s per cell, {budget['min_runs']} to {budget['runs']}"


def _table(cells: list[Cell], models: list[str], grid: Grid, precision: str, threads: int) -> str:
    header = ["px", "batch", "runs", *(f"{m} ms (min–max)" for m in models), *(f"{m} / {BASELINE}" for m in models[1:]), f"{BASELINE} ms/image"]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for size, batch in itertools.product(grid.sizes, grid.batches):
        at = {c.model: c for c in cells if (c.img_size, c.batch, c.precision, c.threads) == (size, batch, precision, threads)}
        row = [str(size), str(batch), str(at[BASELINE].runs)]
        row += [f"{at[m].onnx.median:.2f} ({at[m].onnx.min:.2f}–{at[m].onnx.max:.2f})" for m in models]
        row += [f"×{at[m].onnx.median / at[BASELINE].onnx.median:.2f}" for m in models[1:]]
        row.append(f"{at[BASELINE].onnx.median / batch:.2f}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    """Heatmaps of model / baseline, size × batch, one per model and precision × threads; log colour scale centred on ×1."""
    cells, grid, where, models = _cells(report), _grid(report), report["machine"], list(report["models"])[1:]
    settings = list(itertools.product(grid.precisions, grid.threads))
    values = {(m, p, t): [[ratio(cells, m, s, b, p, t) for b in grid.batches] for s in grid.sizes] for m in models for p, t in settings}
    bound = max(max(abs(math.log(v)) for grid_ in values.values() for row in grid_ for v in row), math.log(1.05))
    norm = LogNorm(vmin=math.exp(-bound), vmax=math.exp(bound))
    figure, axes = plt.subplots(len(models), len(settings), figsize=(3.2 * len(settings), 3.0 * len(models) + 0.8), squeeze=False, layout="constrained")
    for (i, model), (j, (precision, threads)) in itertools.product(enumerate(models), enumerate(settings)):
        ax, grid_ = axes[i][j], values[(model, precision, threads)]
        image = ax.imshow(grid_, cmap="RdBu_r", norm=norm)
        for r, c in itertools.product(range(len(grid.sizes)), range(len(grid.batches))):
            dark = abs(math.log(grid_[r][c])) > 0.6 * bound
            ax.text(c, r, f"×{grid_[r][c]:.2f}", ha="center", va="center", fontsize=9, color="white" if dark else "black")
        ax.set_xticks(range(len(grid.batches)), grid.batches)
        ax.set_yticks(range(len(grid.sizes)), grid.sizes)
        ax.set_xlabel("batch")
        ax.set_ylabel("image size (px)" if j == 0 else "")
        ax.set_title(f"{model} / {BASELINE}\n{precision}, {threads} thread{'s' if threads > 1 else ''}", fontsize=9)
    ticks = [t for t in (0.5, 0.67, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0) if norm.vmin <= t <= norm.vmax]
    bar = figure.colorbar(image, ax=axes, shrink=0.6, ticks=ticks, label=f"latency / {BASELINE} (<1: faster; log scale)")
    bar.ax.minorticks_off()
    bar.ax.set_yticklabels([f"×{t:g}" for t in ticks])
    figure.suptitle(f"FAR / DeiT latency per batch, ONNX Runtime {where['onnxruntime']} on {where['cpu']}, {where['isa']}, {report['date']}", fontsize=10)
    figure.savefig(path, dpi=110, bbox_inches="tight")


class HeadLSTM(nn.Module):
    """One head and direction of a FAR-Tiny block: an LSTM over the head's 64 channels, its output sequence alone."""

    def __init__(self, hidden: int, channels: int = 64) -> None:
        super().__init__()
        self.lstm = nn.LSTM(channels, hidden, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lstm(x)[0]  # (B, N, hidden)


def step_costs(hiddens: Iterable[int], batches: Iterable[int], tokens: int, budget: Budget, workdir: Path) -> list[dict[str, float]]:
    """ONNX Runtime's time per recurrent step of one `HeadLSTM` at each hidden size, precision and batch, one thread:
    a step reads W_hh (4H × H) once for the whole batch, so its time per image falls until the step is compute-bound."""
    rows = []
    for hidden, batch in itertools.product(hiddens, batches):
        path = workdir / f"lstm-{hidden}-{batch}.onnx"
        export_onnx(HeadLSTM(hidden).eval(), (tokens, 64), path, ExportSpec(dynamic_batch=False), force=True, batch=batch)
        with cpu_threads(1, pin=True):
            runners = {p: _sequence_runner(ort_session(file), batch, tokens) for p, file in (("fp32", path), ("int8", quantize_int8(path)))}
            times = time_cell(runners, budget)
        for precision, seconds in times.items():
            step = Timing.of(seconds).median * 1e3 / tokens
            rows.append({"hidden": hidden, "precision": precision, "batch": batch, "us_per_step": step, "us_per_image_step": step / batch})
    return rows


def _sequence_runner(session: ort.InferenceSession, batch: int, tokens: int) -> Callable[[], object]:
    feed = {INPUT: np.random.default_rng(0).standard_normal((batch, tokens, 64), dtype=np.float32)}
    return lambda: session.run(None, feed)


def explain(budget: Budget, sizes: Iterable[int], batches: tuple[int, ...]) -> str:
    """The measured figures the README's explanation of the map rests on, as Markdown."""
    bandwidth, caches = cache_bandwidth(), ", ".join(f"{name} {size}" for name, size in _caches().items())
    where = f"{machine()['cpu']}, {machine()['isa']}: per core {caches}; L2 read rate (numpy matrix-vector, 256 vs 512 KiB, one core)"
    return f"{where}: {bandwidth / 1e9:.0f} GB/s.\n\n{_step_table(budget, batches, bandwidth)}\n{_token_table(sizes)}"


def _step_table(budget: Budget, batches: tuple[int, ...], bandwidth: float) -> str:
    """One FAR head-LSTM's time per step at each batch, beside the time to read its W_hh from L2 at `bandwidth`."""
    lines = [
        "| H | precision | W_hh per step (KiB) | L2 floor (µs/step) | " + " | ".join(f"batch {b}: µs/step (per image)" for b in batches) + " |",
        "|---" * (4 + len(batches)) + "|",
    ]
    with tempfile.TemporaryDirectory(prefix="lstm-steps-") as workdir:
        costs = step_costs((64, 32), batches, 197, budget, Path(workdir))
    for hidden, precision in itertools.product((64, 32), ("fp32", "int8")):
        weight = 4 * hidden * hidden * (4 if precision == "fp32" else 1)
        at = {r["batch"]: r for r in costs if (r["hidden"], r["precision"]) == (hidden, precision)}
        cells = [f"{at[b]['us_per_step']:.2f} ({at[b]['us_per_image_step']:.2f})" for b in batches]
        lines.append(f"| {hidden} | {precision} | {weight / 1024:g} | {weight / bandwidth * 1e6:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _token_table(sizes: Iterable[int]) -> str:
    """Per image size: DeiT-Tiny's attention MACs against its linear layers', and FAR-Tiny's dependent recurrent steps."""
    lines = [
        "| px | tokens N | attention QKᵀ+AV MACs per block (M) | linear MACs per block (M) | attention share | attention MACs per image (G) "
        "| FAR recurrent steps per image |",
        "|---" * 7 + "|",
    ]
    for size in sizes:
        tokens = (size // TINY["patch"]) ** 2 + 1
        attention, linear = 2 * tokens**2 * TINY["dim"], 12 * tokens * TINY["dim"] ** 2  # QKᵀ and AV; qkv, proj and the 4x MLP
        steps = TINY["depth"] * TINY["heads"] * 2 * tokens  # every head's two directions run the tokens one after another
        share, per_image = attention / (attention + linear), TINY["depth"] * attention
        cells = [size, tokens, f"{attention / 1e6:.1f}", f"{linear / 1e6:.1f}", f"{share:.0%}", f"{per_image / 1e9:.3f}", f"{steps:,}"]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines) + "\n"


def _caches() -> dict[str, str]:
    """This core's data and unified caches, by level, as Linux lists them (lscpu's totals are summed over cores)."""
    caches = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        kind = (index / "type").read_text().strip()
        if kind != "Instruction":
            caches[f"L{(index / 'level').read_text().strip()}{'d' if kind == 'Data' else ''}"] = (index / "size").read_text().strip()
    return caches


def report_of(cells: list[Cell], counts: dict[str, dict[str, float]], grid: Grid, budget: Budget, wall_s: float) -> dict:
    return {
        "machine": machine(), "cores": available_cores(), "date": datetime.date.today().isoformat(), "wall_s": wall_s,
        "unit": "ms per call (one batch)", "baseline": BASELINE, "grid": asdict(grid), "budget": asdict(budget),
        "models": counts, "cells": [asdict(c) for c in cells],
    }


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[224, 384, 512])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4, 16])
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "int8"], default=["fp32", "int8"])
    parser.add_argument("--threads", nargs="+", default=["1", "all"], help="thread counts; 'all' (or 0) is every available core")
    parser.add_argument("--keep", type=float, default=0.5, help="share of hidden units FAR-Tiny† keeps")
    parser.add_argument("--runs", type=int, default=30, help="most timed rounds per cell")
    parser.add_argument("--min-runs", type=int, default=7, help="fewest timed rounds per cell")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds per cell (the last sizes the budget)")
    parser.add_argument("--cell-seconds", type=float, default=30.0, help="timed seconds per cell, all its models together")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/batch_map"), help="writes OUT.json, OUT.md, OUT.png")
    parser.add_argument("--render-only", action="store_true", help="redraw OUT.md and OUT.png from OUT.json, measuring nothing")
    parser.add_argument("--explain", action="store_true", help="measure the caches, the L2 rate and one LSTM's step cost per batch instead")
    return parser.parse_args()


def main() -> None:
    start, args, console = time.perf_counter(), parse(), Console()
    if args.explain:
        console.print(explain(Budget(args.runs, args.min_runs, args.warmup, args.cell_seconds), args.sizes, tuple(args.batches)), markup=False, soft_wrap=True)
        return
    if not args.render_only:
        grid = Grid(tuple(args.sizes), tuple(args.batches), tuple(args.precisions), tuple(dict.fromkeys(thread_count(t) for t in args.threads)))
        budget, models = Budget(args.runs, args.min_runs, args.warmup, args.cell_seconds), scale_models("tiny", args.keep, None)
        counts = model_counts(models, grid.sizes)  # first, so every lazy import happens before the long loop
        cells = measure(models, grid, budget, console)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        report = report_of(cells, counts, grid, budget, time.perf_counter() - start)
        args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    report = json.loads(args.out.with_suffix(".json").read_text())
    args.out.with_suffix(".md").write_text(markdown(report))
    plot(report, args.out.with_suffix(".png"))
    console.print(markdown(report), markup=False, highlight=False, soft_wrap=True)


if __name__ == "__main__":
    main()
