"""Teacher sparsity against the student-teacher gap on the quickstart: the sparsity paper's AViT-style token retention.

Per seed, one teacher fit (recipes/ablation/teacher.yaml, the quickstart's 40
epochs), then for each ponder weight recipes/quickstart_halt.yaml from that
teacher (`model.checkpoint`, its fit stage dropped): a halt stage (10 epochs)
teaches the teacher to stop patch tokens, every attention becomes a BiLSTM,
distilled block by block (10 epochs) from the halting teacher, and both are
evaluated. Ponder weight 0 is the control at the same budget: the halt stage
with no ponder cost, no prior and a gate that never fires, so the teacher stays
dense and trains the same 10 more epochs on the labels.

The teacher's sparsity is the share of (patch token, block) pairs it skips;
the gap is the halting teacher's top-1 minus its student's on the digits' fixed
validation split (split_seed 0). Means ± sample standard deviation over seeds.
A run's wall time is the sum of its stages' (report.json), so runs kept with
--reuse count too; the total adds the teacher fits.

    nice -n 10 python -m benchmarks.halting --seeds 0 1 2 --out benchmarks/halting.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
from pathlib import Path

import torch

from benchmarks.ablation import mean_std, run, run_seeds, variant_recipe
from surgery import load_recipe
from surgery.deploy.machine import machine
from surgery.recipe import Recipe

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "quickstart_halt.yaml"
PONDER_WEIGHTS = (0.0, 0.05, 0.2, 0.5, 1.0)
CONTROL = ["stages.1.prior_weight=0", "stages.1.gate_center=1e9"]
"""Ponder weight 0: no prior either, and a gate no token reaches: the dense teacher at the same budget."""


def halting_recipe(seed: int, ponder: float, teacher: Path) -> Recipe:
    sets = [f"seed={seed}", f"model.checkpoint={teacher}", f"stages.1.ponder_weight={ponder}", *(CONTROL if ponder == 0 else [])]
    recipe = load_recipe(RECIPE, sets)
    return recipe.model_copy(update={"stages": [stage for stage in recipe.stages if stage.kind != "fit"]})


def seed_rows(seed: int, workdir: Path, weights: tuple[float, ...], reuse: bool) -> list[dict]:
    root = workdir / f"seed{seed}"
    teacher, _ = run(variant_recipe("teacher", seed), root / "teacher", reuse)
    fitted_report = json.loads(teacher.report_json.read_text())
    fitted, fit_s = fitted_report["teacher"]["top1"], sum(stage["wall_s"] for stage in fitted_report["stages"])
    rows = []
    for ponder in weights:
        done, _ = run(halting_recipe(seed, ponder, teacher.teacher_weights.resolve()), root / f"ponder{ponder:g}", reuse)
        report = json.loads(done.report_json.read_text())
        rows.append({
            "ponder": ponder, "seed": seed, "fitted_top1": fitted, "fit_s": fit_s,
            "teacher_top1": report["teacher"]["top1"], "teacher_tokens": report["teacher"]["tokens_run"],
            "student_top1": report["student"]["top1"], "student_tokens": report["student"]["tokens_run"],
            "fidelity": report["student"]["fidelity"], "wall_s": sum(stage["wall_s"] for stage in report["stages"]),
        })
    return rows


def spearman(xs: list[float], ys: list[float]) -> float:
    """Rank correlation of two equally long lists (average ranks for ties)."""
    from scipy.stats import spearmanr

    return float(spearmanr(xs, ys).statistic)


def markdown(rows: list[dict], seeds: list[int], command: str) -> str:
    where = machine()
    weights = sorted({row["ponder"] for row in rows})
    group = {w: [row for row in rows if row["ponder"] == w] for w in weights}
    column = {w: {key: [row[key] for row in group[w]] for key in group[w][0]} for w in weights}
    gaps = {w: [t - s for t, s in zip(column[w]["teacher_top1"], column[w]["student_top1"])] for w in weights}
    sparsity = {w: [1 - t for t in column[w]["teacher_tokens"]] for w in weights}
    wall_s = sum(row["wall_s"] for row in rows) + sum(row["fit_s"] for row in group[weights[0]])
    lines = [
        (f"{where['cpu']}, {where['isa']}, {torch.get_num_threads()} torch thread(s); {datetime.date.today().isoformat()}; "
         f"seeds {', '.join(map(str, seeds))}; wall {wall_s:.0f} s (the runs' stages, fits included)"),
        "",
        f"`{command}`",
        "",
        "Fitted teacher top-1 per seed: " + ", ".join(f"seed {r['seed']}: {r['fitted_top1']:.2f}" for r in group[weights[0]]),
        "",
        "| ponder weight | teacher sparsity (tokens skipped) | student tokens skipped | teacher top-1 (%) | student top-1 (%) "
        "| gap (teacher − student) | gap per seed | block fidelity | wall per run (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for w in weights:
        name = f"{w:g} (control: dense)" if w == 0 else f"{w:g}"
        lines.append(
            f"| {name} | {mean_std([100 * s for s in sparsity[w]])} % | {mean_std([100 * (1 - t) for t in column[w]['student_tokens']])} % | "
            f"{mean_std(column[w]['teacher_top1'])} | {mean_std(column[w]['student_top1'])} | {mean_std(gaps[w])} | "
            f"{' / '.join(f'{g:+.2f}' for g in gaps[w])} | {mean_std(column[w]['fidelity'])} | {statistics.mean(column[w]['wall_s']):.0f} |"
        )
    mean_sparsity = [statistics.mean(sparsity[w]) for w in weights]
    mean_gap = [statistics.mean(gaps[w]) for w in weights]
    order = sorted(range(len(weights)), key=lambda i: mean_sparsity[i])
    falling = all(mean_gap[b] < mean_gap[a] for a, b in zip(order, order[1:]))
    runs = [(1 - row["teacher_tokens"], row["teacher_top1"] - row["student_top1"]) for row in rows]
    lines += [
        "",
        f"- Spearman ρ between teacher sparsity and gap: {spearman(mean_sparsity, mean_gap):+.2f} over the {len(weights)} means, "
        f"{spearman(*map(list, zip(*runs))):+.2f} over all {len(runs)} runs.",
        f"- The mean gap {'falls' if falling else 'does not fall'} at every step up in mean teacher sparsity "
        f"(the paper: \"increasing teacher sparsity consistently reduces the student-teacher gap\").",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ponder", type=float, nargs="+", default=list(PONDER_WEIGHTS), help="ponder weights; 0 is the dense control")
    parser.add_argument("--workdir", type=Path, default=Path("runs/halting"), help="run directories (kept for inspection)")
    parser.add_argument("--reuse", action="store_true", help="keep runs in --workdir that already have a report.json")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/halting.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    command = "python -m benchmarks.halting " + " ".join(["--seeds", *map(str, args.seeds), "--ponder", *(f"{w:g}" for w in args.ponder),
                                                          "--threads", str(args.threads)])
    run_seeds(args.seeds, lambda seed: seed_rows(seed, args.workdir, tuple(args.ponder), args.reuse), lambda rows, seeds, _: markdown(rows, seeds, command), args.out)


if __name__ == "__main__":
    main()
