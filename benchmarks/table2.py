"""Paper Table 2 on this CPU: DeiT vs FAR vs pruned FAR (Tiny, Small, Base), ONNX Runtime under appendix A.4.

Random weights: latency depends on shapes only. The pruned model keeps `--keep`
(default 0.5, which gives the paper's FAR-Tiny† size) of every LSTM's hidden
units, per head and direction (`far_modules.shrink_uniformly`), or takes its
shapes from a finished run with `--pruned-run` (that run's scale only).
Writes a Markdown table and a PNG bar chart.

    python benchmarks/table2.py --scales tiny --runs 100 --warmup 30 --out benchmarks/table2
"""

from __future__ import annotations

import argparse
import copy
import math
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from torch import nn

from far_modules import shrink_uniformly
from surgery.deploy.bench import BenchRow, BenchSettings, bench
from surgery.deploy.export import models_from_recipe
from surgery.recipe import recipe_from_data
from surgery.runs import RunDir
from surgery.runs.trained import models_from_run

SCALES = {"tiny": "deit_tiny_patch16_224", "small": "deit_small_patch16_224", "base": "deit_base_patch16_224"}


def scale_models(scale: str, keep: float, pruned_run: Path | None) -> dict[str, nn.Module]:
    data = {"name": scale, "model": {"name": SCALES[scale]}, "rewrites": [{"substitute": "bilstm"}]}
    models = models_from_recipe(recipe_from_data(data, []))
    pruned = run_student(pruned_run, SCALES[scale]) if pruned_run else shrink_uniformly(copy.deepcopy(models.student), keep)
    label = scale.capitalize()
    return {f"DeiT-{label}": models.teacher, f"FAR-{label}": models.student, f"FAR-{label}†": pruned.eval()}


def run_student(run: Path, model_name: str) -> nn.Module:
    """The pruned student of a finished run, which must have started from the scale's model."""
    trained = models_from_run(RunDir(run))
    if trained.name != model_name:
        raise SystemExit(f"--pruned-run {run} started from {trained.name}, not {model_name}: give the run of that scale")
    return trained.student


def markdown(rows: list[BenchRow], sizes: tuple[int, ...]) -> str:
    lines = ["| model | params (M) | " + " | ".join(f"MACs {s} (G) | ORT {s} (ms) | ORT min–max {s} | ×DeiT {s}" for s in sizes) + " |"]
    lines.append("|---" * (2 + 4 * len(sizes)) + "|")
    by = {(r.model, r.img_size): r for r in rows}
    for model in dict.fromkeys(r.model for r in rows):
        base = "DeiT-" + model.split("-", 1)[1].rstrip("†")
        cells = [model, f"{by[(model, sizes[0])].params / 1e6:.2f}"]
        for s in sizes:
            row, ref = by[(model, s)], by[(base, s)]
            cells += [f"{row.macs / 1e9:.2f}", f"{row.onnx.median:.2f}", f"{row.onnx.min:.2f}–{row.onnx.max:.2f}", f"{row.onnx.median / ref.onnx.median:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[BenchRow], sizes: tuple[int, ...], path: Path) -> None:
    models = list(dict.fromkeys(r.model for r in rows))
    figure, axes = plt.subplots(1, len(sizes), figsize=(5 * len(sizes), 4), squeeze=False)
    for ax, size in zip(axes[0], sizes):
        medians = {r.model: r.onnx.median for r in rows if r.img_size == size}
        ax.bar(range(len(models)), [medians[m] for m in models], color=["C0", "C1", "C2"] * math.ceil(len(models) / 3))
        ax.set_xticks(range(len(models)), models, rotation=45, ha="right")
        ax.set_ylabel("ms (median, batch 1, 1 thread)")
        ax.set_title(f"ONNX Runtime CPU, {size} px")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", nargs="+", default=list(SCALES), choices=list(SCALES))
    parser.add_argument("--sizes", nargs="+", type=int, default=[224, 384])
    parser.add_argument("--keep", type=float, default=0.5, help="share of hidden units the pruned FAR keeps (0.5 matches the paper's FAR-Tiny† size)")
    parser.add_argument("--pruned-run", type=Path, help="take the pruned shapes from this run instead")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--precision", choices=["fp32", "int8"], default="fp32")
    parser.add_argument("--no-eager", action="store_true", help="skip the PyTorch eager column")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/table2"))
    args = parser.parse_args()
    settings = BenchSettings(args.runs, args.warmup, args.precision, eager=not args.no_eager)
    sizes, rows = tuple(args.sizes), []
    with tempfile.TemporaryDirectory() as workdir:
        for scale in args.scales:
            rows += bench(scale_models(scale, args.keep, args.pruned_run), sizes, settings, Path(workdir))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table = markdown(rows, sizes)
    args.out.with_suffix(".md").write_text(table)
    plot(rows, sizes, args.out.with_suffix(".png"))
    print(table)


if __name__ == "__main__":
    main()
