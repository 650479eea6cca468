"""Student accuracy per substitute on the quickstart setting at equal training budget, and sparse vs dense halves.

The quickstart teacher (a 4-block ViT fit on the embedded digits, seed 0) is
trained once; every substitute then replaces all four attentions and gets the
same budget: the quickstart's distill stage (10 epochs) and finetune stage
(6 epochs), then an evaluation. No pruning, since only the recurrent
substitutes are prunable. `identity` has nothing to distill, so it gets the
finetune stage alone (its budget is smaller by construction).

Then the seed paper's claim ("From Sparsity to Simplicity": sparse layers
replace with a smaller drop): the teacher's sites are ranked by attention
entropy on validation data (`surgery.detect.sparsity`), and `bilstm` replaces the
sparsest half, then the densest half, with the same budget.

    python benchmarks/substitutes.py --out benchmarks/substitutes.md
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import yaml

from far_modules import substitute_names
from surgery.analyze import analyze
from surgery.recipe import recipe_from_data
from surgery.runs import RunDir, apply_recipe
from surgery.targets import resolve_target

QUICKSTART = Path(__file__).resolve().parents[1] / "recipes" / "quickstart.yaml"


def quickstart() -> dict:
    return yaml.safe_load(QUICKSTART.read_text())


def fit_teacher(workdir: Path) -> Path:
    """The quickstart teacher, fit once: its run directory."""
    data = quickstart()
    data["stages"] = [stage for stage in data["stages"] if stage["kind"] == "fit"] + [{"kind": "evaluate"}]
    return apply_recipe(recipe_from_data(data, []), workdir / "teacher").root


def student_run(name: str, teacher: Path, workdir: Path, sites: list[str] | None = None, label: str | None = None) -> dict:
    """Distill + finetune (finetune alone for identity) from the shared teacher; the report's numbers."""
    data = quickstart()
    distill, finetune = (next(s for s in data["stages"] if s["kind"] == kind) for kind in ("distill", "finetune"))
    data["model"]["checkpoint"] = str(RunDir(teacher).teacher_weights)
    data["rewrites"] = [{"select": {"path": sites or "blocks.*.attn"}, "substitute": name, "params": _params(name)}]
    data["stages"] = ([] if name == "identity" else [copy.deepcopy(distill)]) + [copy.deepcopy(finetune), {"kind": "evaluate"}]
    start = time.perf_counter()
    run = apply_recipe(recipe_from_data(data, []), workdir / (label or name))
    report = json.loads(run.report_json.read_text())
    return {"substitute": label or name, "wall_s": time.perf_counter() - start, **{k: report[k] for k in ("teacher", "student")}}


def halves(teacher: Path, workdir: Path) -> tuple[list[dict], list[dict]]:
    """Sites ranked by attention entropy (sparsest first), then bilstm on the sparsest and on the densest half."""
    _, ranked = analyze(resolve_target(str(teacher), accepts=("run",)))
    ranked.sort(key=lambda result: result.mean("entropy"))
    half = len(ranked) // 2
    sparse, dense = [r.path for r in ranked[:half]], [r.path for r in ranked[-half:]]
    rows = [student_run("bilstm", teacher, workdir, sparse, "bilstm, sparsest half"), student_run("bilstm", teacher, workdir, dense, "bilstm, densest half")]
    for row, chosen in zip(rows, (sparse, dense)):
        row["sites"] = chosen
    return [r.to_json() for r in ranked], rows


def _params(name: str) -> dict:
    """The quickstart seeds the BiLSTM from the attention's projections; so does the GRU (same layout)."""
    return {"init": "attention"} if name in ("bilstm", "bigru") else {}


def markdown(rows: list[dict]) -> str:
    teacher = rows[0]["teacher"]
    lines = [
        f"Teacher: top-1 {teacher['top1']:.2f} %, {teacher['params'] / 1e3:.1f} k params, {teacher['macs'] / 1e6:.2f} M MACs.",
        "",
        "| substitute | student top-1 (%) | vs teacher | params (k) | MACs (M) | wall (s) |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        student = row["student"]
        lines.append(
            f"| {row['substitute']} | {student['top1']:.2f} | {student['top1'] - teacher['top1']:+.2f} | "
            f"{student['params'] / 1e3:.1f} | {student['macs'] / 1e6:.2f} | {row['wall_s']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def sparsity_markdown(ranked: list[dict], rows: list[dict]) -> str:
    lines = ["| site (sparsest first) | entropy | top mass | hoyer |", "|---|---|---|---|"]
    lines += [f"| {r['path']} | {r['entropy']:.3f} | {r['top_mass']:.3f} | {r['hoyer']:.3f} |" for r in ranked]
    lines += ["", markdown(rows).split("\n", 2)[2].rstrip()]
    lines += [f"\n{row['substitute']}: {', '.join(row['sites'])}" for row in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--substitutes", nargs="+", default=substitute_names(), choices=substitute_names())
    parser.add_argument("--out", type=Path, default=Path("benchmarks/substitutes.md"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="surgery-zoo-") as workdir:
        teacher = fit_teacher(Path(workdir))
        rows = [student_run(name, teacher, Path(workdir)) for name in args.substitutes]
        ranked, half_rows = halves(teacher, Path(workdir))
    table = markdown(rows) + "\n" + sparsity_markdown(ranked, half_rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
