"""Does `surgery search` predict what training gives? The quickstart searched, then mixes along its front trained for real.

1. `recipes/quickstart_search.yaml` is searched three times into one directory: with its own budget (cold: the
   teacher is fit, every option priced and distilled), at the ReRAM energy of the all-BiLSTM student, and at 80 % of
   it (both warm: only the solver runs).
2. Every mix on the front (or `--mixes` evenly spaced), both chosen mixes and every uniform choice are written as
   plain recipes and run with the quickstart's distill, finetune and evaluate stages (the same budget for every mix:
   pruning, which only the BiLSTMs can, is left out; a mix that only drops attention has nothing to distill and is
   finetuned alone), from the teacher the search fit (the fit stage's output for seed 0), two runs at a time on one
   thread each, with `--seeds` training seeds.
3. Spearman's rank correlation between predicted loss and measured top-1 (after distill + finetune) over the front's
   mixes, and between predicted loss and each trained mix's validation cross-entropy (what the `task` score predicts).

    python -m benchmarks.search_quickstart --out benchmarks/search_quickstart --seeds 5
    python -m benchmarks.search_quickstart --out benchmarks/search_quickstart --from-json   # the correlations again, no training
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from surgery.deploy.machine import machine
from surgery.recipe import load_recipe
from surgery.runs.evaluate import validation_loader
from surgery.runs.replay import load_run
from surgery.runs.rundir import RunDir
from surgery.search.driver import CACHE, SearchResult, run_search
from surgery.search.mix_recipe import save_recipe
from surgery.search.solver import Mix

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "quickstart_search.yaml"
BILSTM = "bilstm(init=attention)"


def searches(folder: Path) -> tuple[dict[str, SearchResult], dict[str, float]]:
    """The three searches (own budget, all-BiLSTM's energy, 80 % of it) and each one's wall time."""
    shutil.rmtree(folder, ignore_errors=True)  # cold: nothing cached
    results, wall = {}, {}
    start = time.perf_counter()
    results["own"] = run_search(load_recipe(RECIPE), folder, name="own", force=True)
    wall["own"] = time.perf_counter() - start
    energy = results["own"].uniform[BILSTM].cost["energy"]
    for name, limit in (("at_bilstm", energy), ("at_80", 0.8 * energy)):
        start = time.perf_counter()
        results[name] = run_search(load_recipe(RECIPE, [f"search.budget.energy={limit!r}"]), folder, name=name, force=True)
        wall[name] = time.perf_counter() - start
    return results, wall


def mixes_to_train(result: SearchResult, count: int | None, chosen: dict[str, Mix]) -> dict[str, Mix]:
    """`count` mixes evenly spaced along the front (cheapest first; None: all of it), the chosen ones and the uniform choices."""
    front = result.front
    count = min(count or len(front), len(front))
    picks = sorted({round(i * (len(front) - 1) / max(count - 1, 1)) for i in range(count)})
    mixes = {f"front{index:02d}": front[index] for index in picks}
    mixes |= {f"chosen_{name}": mix for name, mix in chosen.items()}
    mixes |= {"all_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_"): mix for label, mix in result.uniform.items()}
    return mixes


def write_recipes(result: SearchResult, mixes: dict[str, Mix], folder: Path, teacher: Path) -> dict[str, Path]:
    """Each distinct mix as the recipe the search writes, then started from the search's teacher (fit dropped, its
    weights loaded) and stopped at its first evaluation, after distill and finetune; mix name -> its recipe."""
    paths, written = {}, {}
    for name, mix in mixes.items():
        sites = tuple(mix.sites.values())
        if sites not in written:  # a chosen or uniform mix is often on the front as well: trained once
            recipe = result.mix_recipe(mix, name)
            kinds = [stage.kind for stage in recipe.stages]
            stages = [stage for stage in recipe.stages[: kinds.index("evaluate") + 1] if stage.kind != "fit"]
            model = recipe.model.model_copy(update={"checkpoint": teacher})
            written[sites] = save_recipe(recipe.model_copy(update={"model": model, "stages": stages}), folder)
        paths[name] = written[sites]
    return paths


def train(recipes: dict[str, Path], runs: Path, workers: int, seeds: int) -> dict[str, dict]:
    """`surgery apply` on every distinct recipe with seeds 0 .. seeds-1, `workers` at a time on one thread each; each
    mix's mean top-1 and validation loss."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

    def apply(job: tuple[str, Path, int]) -> tuple[str, Path, float]:
        name, path, seed = job
        start = time.perf_counter()
        out = runs / f"{name}-seed{seed}"
        command = [sys.executable, "-m", "surgery", "apply", str(path), "--out", str(out), "--force", "--set", f"seed={seed}"]
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return name, out, time.perf_counter() - start

    distinct = {path: path.stem for path in recipes.values()}  # mixes sharing a recipe are trained once
    jobs = [(name, path, seed) for path, name in distinct.items() for seed in range(seeds)]
    with ThreadPoolExecutor(workers) as pool:
        finished = list(pool.map(apply, jobs))
    # measured here, one at a time: rebuilding a student replays its torch.fx surgery, which two threads must not do at once
    done = [(name, json.loads((out / "report.json").read_text())["student"]["top1"], validation_loss(out), wall) for name, out, wall in finished]
    measured = {}
    for name in distinct.values():
        runs_of = [(top1, loss, wall) for n, top1, loss, wall in done if n == name]
        measured[name] = {"student": statistics.mean(top1 for top1, _, _ in runs_of), "student_by_seed": [top1 for top1, _, _ in runs_of],
                          "val_loss": statistics.mean(loss for _, loss, _ in runs_of), "val_loss_by_seed": [loss for _, loss, _ in runs_of],
                          "wall_s": sum(wall for _, _, wall in runs_of)}
    return {name: measured[distinct[path]] for name, path in recipes.items()}


@torch.no_grad()
def validation_loss(run: Path) -> float:
    """The run's student's mean cross-entropy on its validation split."""
    student = load_run(run).eval()
    total, count = 0.0, 0
    for images, labels in validation_loader(RunDir(run), student, 256):
        total += F.cross_entropy(student(images), labels, reduction="sum").item()
        count += len(labels)
    return total / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/search_quickstart"), help="Writes OUT.json and OUT.md.")
    parser.add_argument("--workdir", type=Path, default=Path("runs/search_quickstart"))
    parser.add_argument("--mixes", type=int, default=None, help="Mixes taken along the front, evenly spaced (default: every one).")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=2, help="Training seeds per mix; the table shows their mean.")
    parser.add_argument("--from-json", action="store_true", help="Train nothing: the correlations and table again from OUT.json's rows.")
    args = parser.parse_args()
    if args.from_json:
        report = json.loads(args.out.with_suffix(".json").read_text())
    else:
        report = measure(args)
    report |= correlations(report["rows"], report["score"])
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


def measure(args: argparse.Namespace) -> dict:
    """Search, train every mix to be measured, and report them with their predicted losses."""
    results, wall = searches(args.workdir / "search")
    chosen = {name: results[name].chosen for name in ("at_bilstm", "at_80")}
    mixes = mixes_to_train(results["at_bilstm"], args.mixes, chosen)
    teacher = next((args.workdir / "search" / CACHE).glob("teacher-*.safetensors"))
    recipes = write_recipes(results["at_bilstm"], mixes, args.workdir / "recipes", teacher)
    measured = train(recipes, args.workdir / "runs", args.workers, args.seeds)
    scores = results["at_bilstm"].scores
    rows = [{"name": name, "sites": mix.sites, "predicted": {score: sum(losses[p][label] for p, label in mix.sites.items()) for score, losses in scores.items()},
             "energy_j": mix.cost["energy"], **measured[name]} for name, mix in mixes.items()]
    return {
        "machine": machine(),
        "search_wall_s": wall,
        "search_timing": {name: result.timing for name, result in results.items()},
        "budgets_j": {name: result.budget["energy"] for name, result in results.items()},
        "seeds": args.seeds,
        "score": results["at_bilstm"].recipe.search.predictor.score,
        "rows": rows,
    }


def correlations(rows: list[dict], score: str) -> dict:
    """Spearman's ρ between predicted loss and what training gave, over the front's mixes: for every score against
    mean top-1 and validation loss; for the search's `score` against each seed's top-1, and on either side of each
    uniform choice that lies inside the front (its mixes up to it, and from it on)."""
    front = [row for row in rows if row["name"].startswith("front")]

    def rho(part: list[dict], which: str, measured: Callable[[dict], float]) -> float:
        return float(spearmanr([row["predicted"][which] for row in part], [measured(row) for row in part]).statistic)

    scores = list(front[0]["predicted"])
    inside = {row["name"]: index for row in rows if row["name"].startswith("all_")
              for index, mix in enumerate(front) if mix["sites"] == row["sites"] and 0 < index < len(front) - 1}
    return {
        "spearman_predicted_vs_student_top1": {which: rho(front, which, lambda row: row["student"]) for which in scores},
        "spearman_predicted_vs_student_val_loss": {which: rho(front, which, lambda row: row["val_loss"]) for which in scores},
        "spearman_by_seed": [rho(front, score, lambda row, seed=seed: row["student_by_seed"][seed]) for seed in range(len(front[0]["student_by_seed"]))],
        "spearman_either_side": {
            name: {side: {"mixes": len(part), "top1": rho(part, score, lambda row: row["student"]), "val_loss": rho(part, score, lambda row: row["val_loss"])}
                   for side, part in (("up to it", front[: index + 1]), ("from it on", front[index:]))}
            for name, index in inside.items()
        },
    }


def markdown(report: dict) -> str:
    wall = report["search_wall_s"]
    lines = [
        f"CPU: {report['machine']['cpu']} ({report['machine']['isa']}).",
        "",
        f"Search wall time: {wall['own']:.1f} s cold (teacher fit, costs, predictor); "
        f"{wall['at_bilstm']:.1f} s and {wall['at_80']:.1f} s for two more budgets from the cache.",
        "",
        "Spearman ρ (predicted loss, measured top-1) over the front's mixes: "
        + ", ".join(f"{score} {rho:+.3f}" for score, rho in report["spearman_predicted_vs_student_top1"].items())
        + f" (top-1: mean of {report['seeds']} training seeds); against their validation cross-entropy: "
        + ", ".join(f"{score} {rho:+.3f}" for score, rho in report["spearman_predicted_vs_student_val_loss"].items())
        + " (positive is right).",
        "",
        f"Against each seed's top-1 alone (`{report['score']}`): " + " / ".join(f"{rho:+.3f}" for rho in report["spearman_by_seed"]) + ".",
        "",
        *(f"On either side of {name} (`{report['score']}`): " + "; ".join(
            f"{side} ({part['mixes']} mixes) {part['top1']:+.3f} against top-1, {part['val_loss']:+.3f} against validation loss"
            for side, part in sides.items()) + "." for name, sides in report["spearman_either_side"].items()),
        "",
        f"The search used the `{report['score']}` score; the others come from the same predictor run.",
        "",
        "| mix | sites (blocks 0-3) | " + " | ".join(f"predicted ({score})" for score in report["spearman_predicted_vs_student_top1"])
        + " | energy (µJ) | top-1 after distill + finetune (%) | by seed | validation loss |",
        "|---|---|" + "---|" * len(report["spearman_predicted_vs_student_top1"]) + "---|---|---|---|",
    ]
    for row in report["rows"]:
        sites = ", ".join(row["sites"].values())
        seeds = " / ".join(f"{top1:.2f}" for top1 in row["student_by_seed"])
        predicted = " | ".join(f"{value:+.4f}" for value in row["predicted"].values())
        lines.append(f"| {row['name']} | {sites} | {predicted} | {row['energy_j'] * 1e6:.2f} | {row['student']:.2f} | {seeds} | {row['val_loss']:.4f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
