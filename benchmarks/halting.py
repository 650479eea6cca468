"""Teacher sparsity against the student-teacher gap on the quickstart: the sparsity paper's AViT-style token retention.

Per seed, one teacher fit (recipes/ablation/teacher.yaml, the quickstart's 40
epochs), then for each ponder weight recipes/quickstart_halt.yaml from that
teacher (`model.checkpoint`, its fit stage dropped): a halt stage (10 epochs)
teaches the teacher to stop patch tokens, every attention becomes a BiLSTM,
distilled block by block (10 epochs) from the halting teacher, and both are
evaluated. The student distils either halting on its own gate (`own`) or
running exactly the tokens its teacher runs (`teacher`, distill's
`halting: teacher`); it is evaluated on its own gate either way. Ponder weight 0 is the control at the same budget: the halt stage
with no ponder cost, no prior and a gate that never fires, so the teacher stays
dense and trains the same 10 more epochs on the labels.

The teacher's sparsity is the share of (patch token, block) pairs it skips;
the gap is the halting teacher's top-1 minus its student's on the digits' fixed
validation split (split_seed 0), with the student on its own gate, and on its
teacher's tokens (re-measured from the run's files, `surgery.runs.evaluate`). Means ± sample standard deviation over seeds.
A run's wall time is the sum of its stages' (report.json), so runs kept with
--reuse count too; the total adds the teacher fits.

    nice -n 10 python -m benchmarks.halting --seeds 0 1 2 --out benchmarks/halting.md
"""

from __future__ import annotations

import datetime
import itertools
import json
import statistics
from pathlib import Path

import torch

from benchmarks.ablation import mean_std, run, run_seeds, seeded_parser, variant_recipe
from surgery import load_recipe
from surgery.deploy.machine import machine
from surgery.recipe import Recipe
from surgery.runs.evaluate import evaluate_run

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "quickstart_halt.yaml"
PONDER_WEIGHTS = (0.0, 0.05, 0.2, 0.5, 1.0)
CONTROL = ["stages.1.prior_weight=0", "stages.1.gate_center=1e9"]
"""Ponder weight 0: no prior either, and a gate no token reaches: the dense teacher at the same budget."""
FOLLOWS = {"own": "its own gate", "teacher": "the teacher's stops"}
"""distill's `halting`: what a halting student stops tokens on while it distils."""


def halting_recipe(seed: int, ponder: float, teacher: Path, follow: str) -> Recipe:
    sets = [f"seed={seed}", f"model.checkpoint={teacher}", f"stages.1.ponder_weight={ponder}", f"stages.2.halting={follow}", *(CONTROL if ponder == 0 else [])]
    recipe = load_recipe(RECIPE, sets)
    return recipe.model_copy(update={"stages": [stage for stage in recipe.stages if stage.kind != "fit"]})


def seed_rows(seed: int, workdir: Path, weights: tuple[float, ...], follows: tuple[str, ...], reuse: bool) -> list[dict]:
    root = workdir / f"seed{seed}"
    teacher, _ = run(variant_recipe("teacher", seed), root / "teacher", reuse)
    fitted_report = json.loads(teacher.report_json.read_text())
    fitted, fit_s = fitted_report["teacher"]["top1"], sum(stage["wall_s"] for stage in fitted_report["stages"])
    rows = []
    for follow, ponder in itertools.product(follows, weights):
        name = f"ponder{ponder:g}" + ("" if follow == "own" else f"-{follow}")
        done, _ = run(halting_recipe(seed, ponder, teacher.teacher_weights.resolve(), follow), root / name, reuse)
        report = json.loads(done.report_json.read_text())
        following = evaluate_run(done)["student"]["top1_on_teacher_tokens"]  # re-measured from disk: runs kept with --reuse have it too
        rows.append({
            "ponder": ponder, "halting": follow, "seed": seed, "fitted_top1": fitted, "fit_s": fit_s,
            "teacher_top1": report["teacher"]["top1"], "teacher_tokens": report["teacher"]["tokens_run"],
            "student_top1": report["student"]["top1"], "student_tokens": report["student"]["tokens_run"], "following_top1": following,
            "fidelity": report["student"]["fidelity"], "wall_s": sum(stage["wall_s"] for stage in report["stages"]),
        })
    return rows


def spearman(xs: list[float], ys: list[float]) -> float:
    """Rank correlation of two equally long lists (average ranks for ties)."""
    from scipy.stats import spearmanr

    return float(spearmanr(xs, ys).statistic)


def markdown(rows: list[dict], seeds: list[int], command: str) -> str:
    where = machine()
    keys = sorted({(row["halting"], row["ponder"]) for row in rows}, key=lambda key: (key[0] != "own", key[1]))
    group = {key: [row for row in rows if (row["halting"], row["ponder"]) == key] for key in keys}
    column = {key: {name: [row[name] for row in group[key]] for name in group[key][0]} for key in keys}
    gaps = {key: [t - s for t, s in zip(column[key]["teacher_top1"], column[key]["student_top1"])] for key in keys}
    oracle = {key: [t - s for t, s in zip(column[key]["teacher_top1"], column[key]["following_top1"])] for key in keys}
    sparsity = {key: [1 - t for t in column[key]["teacher_tokens"]] for key in keys}
    fits = {row["seed"]: (row["fitted_top1"], row["fit_s"]) for row in rows}
    wall_s = sum(row["wall_s"] for row in rows) + sum(fit_s for _, fit_s in fits.values())
    lines = [
        (f"{where['cpu']}, {where['isa']}, {torch.get_num_threads()} torch thread(s); {datetime.date.today().isoformat()}; "
         f"seeds {', '.join(map(str, seeds))}; wall {wall_s:.0f} s (the runs' stages, fits included)"),
        "",
        f"`{command}`",
        "",
        "Fitted teacher top-1 per seed: " + ", ".join(f"seed {seed}: {top1:.2f}" for seed, (top1, _) in sorted(fits.items())),
        "",
        "| student halts on | ponder weight | teacher sparsity (tokens skipped) | student tokens skipped | teacher top-1 (%) | student top-1 (%) "
        "| gap (teacher − student) | gap per seed | student top-1 on the teacher's tokens | gap there | block fidelity | wall per run (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in keys:
        follow, w = key
        name = f"{w:g} (control: dense)" if w == 0 else f"{w:g}"
        lines.append(
            f"| {FOLLOWS[follow]} | {name} | {mean_std([100 * s for s in sparsity[key]])} % | {mean_std([100 * (1 - t) for t in column[key]['student_tokens']])} % | "
            f"{mean_std(column[key]['teacher_top1'])} | {mean_std(column[key]['student_top1'])} | {mean_std(gaps[key])} | "
            f"{' / '.join(f'{g:+.2f}' for g in gaps[key])} | {mean_std(column[key]['following_top1'])} | {mean_std(oracle[key])} | "
            f"{mean_std(column[key]['fidelity'])} | {statistics.mean(column[key]['wall_s']):.0f} |"
        )
    lines.append("")
    for follow in dict.fromkeys(follow for follow, _ in keys):
        mine = [key for key in keys if key[0] == follow]
        mean_sparsity = [statistics.mean(sparsity[key]) for key in mine]
        mean_gap = [statistics.mean(gaps[key]) for key in mine]
        order = sorted(range(len(mine)), key=lambda i: mean_sparsity[i])
        falling = all(mean_gap[b] < mean_gap[a] for a, b in zip(order, order[1:]))
        runs = [(1 - row["teacher_tokens"], row["teacher_top1"] - row["student_top1"]) for row in rows if row["halting"] == follow]
        mean_oracle = [statistics.mean(oracle[key]) for key in mine]
        lines.append(
            f"- Student halting on {FOLLOWS[follow]} while distilling: Spearman ρ between teacher sparsity and gap "
            f"{spearman(mean_sparsity, mean_gap):+.2f} over the {len(mine)} means, {spearman(*map(list, zip(*runs))):+.2f} over all "
            f"{len(runs)} runs; the mean gap {'falls' if falling else 'does not fall'} at every step up in mean teacher sparsity. "
            f"On the teacher's tokens: ρ {spearman(mean_sparsity, mean_oracle):+.2f} over the means."
        )
    lines.append("- The paper: \"increasing teacher sparsity consistently reduces the student-teacher gap\".")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = seeded_parser(__doc__.splitlines()[0], "halting")
    parser.add_argument("--ponder", type=float, nargs="+", default=list(PONDER_WEIGHTS), help="ponder weights; 0 is the dense control")
    parser.add_argument("--halting", nargs="+", choices=list(FOLLOWS), default=list(FOLLOWS), help="distill's halting: own, teacher")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    command = "python -m benchmarks.halting " + " ".join(["--seeds", *map(str, args.seeds), "--ponder", *(f"{w:g}" for w in args.ponder),
                                                          "--halting", *args.halting, "--threads", str(args.threads)])
    run_seeds(args.seeds, lambda seed: seed_rows(seed, args.workdir, tuple(args.ponder), tuple(args.halting), args.reuse), lambda rows, seeds, _: markdown(rows, seeds, command), args.out)


if __name__ == "__main__":
    main()
