"""The FAR paper's Table 3 ablation on the quickstart setting: from scratch, classification only, similarity only, combined.

Every variant is a shipped recipe under recipes/ablation/ and keeps the
quickstart's model, data, split and schedule:

- combined (the default, "Distill (combine)"): the substitutes alone learn from
  block similarity + cross-entropy (paper eq. 4, λ = 1) for 10 epochs, the
  rest frozen; then the whole student is finetuned on the labels for 6.
- cls ("Distill (cls)"): the same with the similarity weight 0.
- sim ("Distill (sim)"): the same with the cross-entropy weight 0; the
  finetune on the labels follows, as in every distilled variant.
- scratch ("TFS"): the FAR architecture with every weight random, trained end
  to end on the labels with no teacher: 16 epochs (the optimizer steps the
  distilled variants give their substitutes) and 56 (the teacher's 40 + 16,
  equal total epochs).

The teacher fit (40 epochs) is the same for the three distilled variants of a
seed, so it runs once per seed (recipes/ablation/teacher.yaml) and they start
from its teacher.safetensors (`model.checkpoint`, their fit stage dropped).
Top-1 is on the digits' fixed validation split (split_seed 0); a seed changes
initialisation and batch order. Means ± sample standard deviation over seeds.

    nice -n 10 python benchmarks/ablation.py --seeds 0 1 2 --out benchmarks/ablation.md
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from surgery import apply_recipe, load_recipe
from surgery.deploy.machine import machine
from surgery.recipe import Recipe
from surgery.runs import RunDir

RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "ablation"
DISTILLED = ("combined", "cls", "sim")
# Paper Table 3, top-1 (%) on ImageNet: (FAR-Tiny, FAR-Small) per schedule.
PAPER = {"scratch": (70.4, 63.6), "cls": (73.4, 77.3), "sim": (64.3, 72.8), "combined": (74.2, 77.9)}
LABELS = {"scratch": "TFS (from scratch)", "cls": "Distill (cls)", "sim": "Distill (sim)", "combined": "Distill (combine)"}


def variant_recipe(name: str, seed: int, teacher: Path | None = None, epochs: int | None = None) -> Recipe:
    """A shipped recipe at `seed`; with `teacher`, started from its weights with the fit stage dropped."""
    sets = [f"seed={seed}"] + ([f"model.checkpoint={teacher}"] if teacher else []) + ([f"stages.0.epochs={epochs}"] if epochs else [])
    recipe = load_recipe(RECIPES / f"{name}.yaml", sets)
    if teacher is None:
        return recipe
    return recipe.model_copy(update={"stages": [stage for stage in recipe.stages if stage.kind != "fit"]})


def run(recipe: Recipe, out: Path, reuse: bool) -> tuple[RunDir, float]:
    """The finished run in `out` (an earlier one kept with `reuse`), and its wall seconds."""
    if reuse and RunDir(out).report_json.exists():
        return RunDir(out), 0.0
    started = time.perf_counter()
    done = apply_recipe(recipe, out, force=True)
    return done, time.perf_counter() - started


def last_epoch_top1(run_dir: RunDir, kind: str, recipe: Recipe) -> float | None:
    """Top-1 logged at the last epoch of the recipe's first `kind` stage (metrics.jsonl)."""
    index = next((i for i, stage in enumerate(recipe.stages) if stage.kind == kind), None)
    records = [json.loads(line) for line in run_dir.metrics.read_text().splitlines()]
    epochs = [r for r in records if r.get("kind") == "epoch" and r.get("stage_index") == index and "top1" in r]
    return epochs[-1]["top1"] if epochs else None


def seed_rows(seed: int, workdir: Path, scratch_epochs: list[int], reuse: bool) -> list[dict]:
    """Every variant at one seed: one teacher fit, the three distilled variants from it, then the scratch runs."""
    root = workdir / f"seed{seed}"
    teacher, teacher_s = run(variant_recipe("teacher", seed), root / "teacher", reuse)
    weights = teacher.teacher_weights.resolve()
    teacher_top1 = json.loads(teacher.report_json.read_text())["teacher"]["top1"]
    rows = []
    for name in DISTILLED:
        recipe = variant_recipe(name, seed, weights)
        done, wall = run(recipe, root / name, reuse)
        report = json.loads(done.report_json.read_text())
        if report["teacher"]["top1"] != teacher_top1:  # the checkpoint is the fitted teacher, or the table means nothing
            raise SystemExit(f"{done.root}: teacher top-1 {report['teacher']['top1']} is not the fitted teacher's {teacher_top1}")
        rows.append({"variant": name, "seed": seed, "top1": report["student"]["top1"], "after_distill": last_epoch_top1(done, "distill", recipe),
                     "teacher_top1": teacher_top1, "teacher_wall_s": teacher_s, "wall_s": wall})
    for epochs in scratch_epochs:
        done, wall = run(variant_recipe("scratch", seed, epochs=epochs), root / f"scratch{epochs}", reuse)
        report = json.loads(done.report_json.read_text())
        rows.append({"variant": "scratch", "epochs": epochs, "seed": seed, "top1": report["student"]["top1"], "after_distill": None,
                     "teacher_top1": teacher_top1, "teacher_wall_s": teacher_s, "wall_s": wall})
    return rows


def row_key(row: dict) -> str:
    return f"scratch{row['epochs']}" if row["variant"] == "scratch" else row["variant"]


def label(key: str) -> str:
    if key.startswith("scratch"):
        epochs = int(key.removeprefix("scratch"))
        return f"{LABELS['scratch']}, {epochs} epochs"
    return LABELS[key]


def mean_std(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def ranks(values: dict[str, float]) -> dict[str, int]:
    """1 for the highest value; equal values (to 1e-6) share a rank, the next rank skipping as many."""
    return {key: 1 + sum(round(other, 6) > round(value, 6) for other in values.values()) for key, value in values.items()}


def schedules(means: dict[str, float]) -> dict[str, dict[str, float]]:
    """The four schedules' mean top-1, once per scratch run: {scratch key: {schedule: mean}}."""
    scratch = sorted((k for k in means if k.startswith("scratch")), key=lambda k: int(k.removeprefix("scratch")))
    return {s: {"scratch": means[s], **{k: means[k] for k in DISTILLED if k in means}} for s in scratch}


def order_text(values: dict[str, float]) -> str:
    """`a 97.78 > b 97.50 = c 97.50`: highest first, ties joined by `=`."""
    keys = sorted(values, key=values.get, reverse=True)
    parts = [f"{LABELS[keys[0]]} {values[keys[0]]:.2f}"]
    for before, key in itertools.pairwise(keys):
        parts.append(f"{'=' if round(values[before], 6) == round(values[key], 6) else '>'} {LABELS[key]} {values[key]:.2f}")
    return " ".join(parts)


def against(values: dict[str, float], paper: dict[str, float]) -> str:
    """How many of the paper's pairs our means order the same way, tie, or reverse; and whether the whole order holds."""
    keys = sorted(paper, key=paper.get, reverse=True)
    signs = [round(values[a], 6) - round(values[b], 6) for i, a in enumerate(keys) for b in keys[i + 1 :]]
    agree, tied = sum(d > 0 for d in signs), sum(d == 0 for d in signs)
    verdict = "reproduces" if agree == len(signs) else "does not reproduce"
    return (f"the paper's order ({' > '.join(LABELS[k] for k in keys)}) {verdict}: of its {len(signs)} pairs "
            f"{agree} agree, {tied} tie, {len(signs) - agree - tied} reverse")


def verdicts(means: dict[str, float], distilled: dict[str, float]) -> list[str]:
    """Our order of the four schedules against each paper column, per scratch run; the distilled three before finetune."""
    lines = []
    for scratch, ours in schedules(means).items():
        if len(ours) < 4:
            continue
        lines.append(f"- after finetune, with {label(scratch)}: {order_text(ours)}")
        for column, paper in (("FAR-Tiny", 0), ("FAR-Small", 1)):
            lines.append(f"  - {column}: {against(ours, {k: v[paper] for k, v in PAPER.items()})}")
    if len(distilled) == len(DISTILLED):
        lines.append(f"- after distill, before finetune (the three distilled schedules): {order_text(distilled)}")
        lines.append(f"  - FAR-Tiny and FAR-Small alike: {against(distilled, {k: PAPER[k][0] for k in DISTILLED})}")
    return lines


def our_ranks(means: dict[str, float]) -> dict[str, str]:
    """Each row's rank among the four schedules, once per scratch run (a distilled row: one rank per scratch run)."""
    per = {s: ranks(ours) for s, ours in schedules(means).items()}
    out = {s: str(r["scratch"]) for s, r in per.items()}
    for k in DISTILLED:
        if k in means:
            out[k] = " / ".join(str(r[k]) for r in per.values())
    return out


def markdown(rows: list[dict], seeds: list[int], wall_s: float, command: str) -> str:
    where = machine()
    keys = list(dict.fromkeys(row_key(r) for r in rows))
    by_key = {k: sorted((r for r in rows if row_key(r) == k), key=lambda r: r["seed"]) for k in keys}
    means = {k: statistics.mean(r["top1"] for r in by_key[k]) for k in keys}
    ours = our_ranks(means)
    tiny, small = ranks({k: v[0] for k, v in PAPER.items()}), ranks({k: v[1] for k, v in PAPER.items()})
    scratch_runs = " / ".join(label(k).split(", ")[-1] for k in keys if k.startswith("scratch"))
    teachers = sorted({(r["seed"], r["teacher_top1"]) for r in rows})
    lines = [
        (f"{where['cpu']}, {where['isa']}, {torch.get_num_threads()} torch thread(s); {datetime.date.today().isoformat()}; "
         f"seeds {', '.join(map(str, seeds))}; wall {wall_s:.0f} s"),
        "",
        f"`{command}`",
        "",
        "Teacher (fit 40 epochs) top-1 per seed: " + ", ".join(f"seed {s}: {t:.2f}" for s, t in teachers),
        "",
        (f"| variant | top-1 (%) mean ± std | per seed | after distill, before finetune | rank (ours; TFS {scratch_runs}) "
         "| paper FAR-Tiny (rank) | paper FAR-Small (rank) |"),
        "|---|---|---|---|---|---|---|",
    ]
    for k in keys:
        group = by_key[k]
        distilled = [r["after_distill"] for r in group if r["after_distill"] is not None]
        schedule = "scratch" if k.startswith("scratch") else k
        per_seed = " / ".join(f"{r['top1']:.2f}" for r in group)
        lines.append(
            f"| {label(k)} | {mean_std([r['top1'] for r in group])} | {per_seed} | {mean_std(distilled) if distilled else '—'} | "
            f"{ours.get(k, '—')} | {PAPER[schedule][0]} ({tiny[schedule]}) | {PAPER[schedule][1]} ({small[schedule]}) |"
        )
    lines += ["", "Ranks are among the four schedules, ties sharing one (paper: ImageNet top-1, Table 3). Orders of the means:", ""]
    after = {k: statistics.mean(r["after_distill"] for r in by_key[k]) for k in DISTILLED if k in by_key}
    lines += verdicts(means, after)
    walls = {k: statistics.mean(r["wall_s"] for r in by_key[k]) for k in keys}
    lines += ["", "Mean wall per run (s): " + ", ".join(f"{label(k)} {walls[k]:.0f}" for k in keys)
              + f"; teacher fit {statistics.mean(r['teacher_wall_s'] for r in rows):.0f}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = seeded_parser(__doc__.splitlines()[0], "ablation")
    parser.add_argument("--scratch-epochs", type=int, nargs="+", default=[16, 56], help="lengths of the from-scratch runs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    command = "python benchmarks/ablation.py " + " ".join(
        ["--seeds", *map(str, args.seeds), "--scratch-epochs", *map(str, args.scratch_epochs), "--threads", str(args.threads)])
    run_seeds(
        args.seeds, lambda seed: seed_rows(seed, args.workdir, args.scratch_epochs, args.reuse),
        lambda rows, seeds, wall_s: markdown(rows, seeds, wall_s, command), args.out,
    )


def seeded_parser(description: str, name: str) -> argparse.ArgumentParser:
    """The options every seeded quickstart study takes: seeds, where its runs live (and reusing them), threads, output."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workdir", type=Path, default=Path("runs") / name, help="run directories (kept for inspection)")
    parser.add_argument("--reuse", action="store_true", help="keep runs in --workdir that already have a report.json")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--out", type=Path, default=Path("benchmarks") / f"{name}.md")
    return parser


def run_seeds(seeds: list[int], rows_of: Callable[[int], list[dict]], table_of: Callable[[list[dict], list[int], float], str], out: Path) -> None:
    """Seed after seed, the table of the rows so far (given the seeds done and the wall seconds) rewritten to `out`,
    so a stopped run keeps what finished; then the table and the wall time printed."""
    started, rows = time.perf_counter(), []
    for done, seed in enumerate(seeds, 1):
        rows += rows_of(seed)
        table = table_of(rows, seeds[:done], time.perf_counter() - started)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(table)
    print(table)
    print(f"WALL {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
