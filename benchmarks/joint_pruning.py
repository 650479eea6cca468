"""Issue 16: DeepHoyer applied jointly with block distillation against the separate prune stage, on the quickstart.

Runs `surgery apply` on recipes/quickstart.yaml (separate prune stage) and recipes/quickstart_joint.yaml (the
Group-HS penalty in the distill stage, same teacher, same 30 student epochs: see its header) for each seed and
prints one Markdown row per run: top-1 of teacher, student (separate: the finetuned student's evaluate; joint:
distill's last epoch, before the removal) and pruned model, params, LSTM hidden units kept and the command's wall
time. Run directories go under --out. `--jobs N` runs N commands at once, each on OMP_NUM_THREADS=--threads
(on a machine with at least N x threads free cores, so each sees what a lone run on that many cores sees).

    python -m benchmarks.joint_pruning --seeds 0 1 2                      # from the repository root, one at a time
    python -m benchmarks.joint_pruning --seeds 0 1 2 --jobs 6 --threads 2 # six at once on a 16-core machine
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

RECIPES = {"separate": Path("recipes/quickstart.yaml"), "joint": Path("recipes/quickstart_joint.yaml")}
HEADER = "| recipe | seed | teacher top-1 | student top-1 | pruned top-1 | params (pruned) | MACs (pruned) | units kept | wall (s) |\n|---|---|---|---|---|---|---|---|---|"


def apply(recipe: Path, seed: int, out: Path, threads: int | None) -> float:
    """`surgery apply` in its own process (on `threads` threads, or torch's default); its wall time in seconds."""
    command = [sys.executable, "-m", "surgery", "apply", str(recipe), "--out", str(out), "--set", f"seed={seed}", "--force"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)} if threads else None
    print(" ".join(["surgery", *command[3:]]), file=sys.stderr, flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - started


def row(label: str, seed: int, run: Path, wall_s: float) -> str:
    """One table row from the run's report.json and metrics.jsonl."""
    report = json.loads((run / "report.json").read_text())
    student = report["student"]["top1"] if "student" in report else _last_distill_top1(run / "metrics.jsonl")
    pruned = report["pruned"]
    top1 = [f"{value:.2f}" for value in (report["teacher"]["top1"], student, pruned["top1"])]
    size = [f"{pruned['params'] / 1e3:.1f} k", f"{pruned['macs'] / 1e6:.2f} M", f"{pruned['kept_fraction']:.1%}"]
    return "| " + " | ".join([label, str(seed), *top1, *size, f"{wall_s:.0f}"]) + " |"


def _last_distill_top1(metrics: Path) -> float:
    """Top-1 at distill's last epoch: the joint student just before its units are removed."""
    epochs = [json.loads(line) for line in metrics.read_text().splitlines()]
    return [m for m in epochs if m["kind"] == "epoch" and m["stage"].endswith(":distill")][-1]["top1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", type=Path, default=Path("runs/joint_pruning"))
    parser.add_argument("--jobs", type=int, default=1, help="commands run at once")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of each command (default: torch's)")
    args = parser.parse_args()
    runs = [(label, seed, args.out / f"{label}-seed{seed}") for seed in args.seeds for label in RECIPES]
    with ThreadPoolExecutor(args.jobs) as pool:
        walls = list(pool.map(lambda run: apply(RECIPES[run[0]], run[1], run[2], args.threads), runs))
    print(HEADER)
    for (label, seed, run), wall_s in zip(runs, walls):
        print(row(label, seed, run, wall_s))


if __name__ == "__main__":
    main()
