"""The run report: report.json for scripts, report.md for people, and the kept-units heatmap (paper fig. 5)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from surgery.figures import pyplot, save_figure
from surgery.measure.plots import plot_energy
from surgery.measure.tables import cost_markdown
from surgery.recipe import Recipe
from surgery.runs.rundir import RunDir
from surgery.train.checkpoint import write_text_atomic

MODELS = ("dense_teacher", "teacher", "student", "pruned")
"""Rows of the report: the teacher before a halt stage taught it to stop tokens, the teacher, the student, the pruned student."""
_SHORT = {"forward": "fwd", "backward": "bwd"}


def write_report(run: RunDir, results: dict[str, Any], recipe: Recipe) -> None:
    report = build_report(results, recipe)
    write_text_atomic(run.report_json, json.dumps(report, indent=2))
    write_text_atomic(run.report_md, render_markdown(report))
    if "pruning" in results:
        plot_kept_units(results["pruning"]["by_site"], run.plots / "kept_units.png")
    if "cost" in results:
        plot_energy(results["cost"], run.plots / "energy.png")


def build_report(results: dict[str, Any], recipe: Recipe) -> dict[str, Any]:
    """teacher / student / pruned rows (what each evaluate measured), the source run of a transfer, the stages, their
    wall times, the hardware cost."""
    report: dict[str, Any] = {"recipe": recipe.name, "model": recipe.model.name}
    for name in MODELS:
        if name in results:
            report[name] = dict(results[name])
    if "pruned" in report and "pruning" in results:
        report["pruned"]["kept_fraction"] = results["pruning"]["kept_fraction"]
        report["pruning"] = results["pruning"]
    if "head" in results:
        report["head"] = results["head"]
    if "transfer" in results:
        report["transfer"] = results["transfer"]
    report["stages"] = results.get("stages", [])
    if "cost" in results:
        report["cost"] = results["cost"]
    return report


COLUMNS = (
    ("top1", "top-1 (%)", "{:.2f}"),
    ("embedding_cosine", "cosine to teacher", "{:.4f}"),
    ("probe_top1", "probe top-1 (%)", "{:.2f}"),
    ("neighbour_overlap@10", "top-10 overlap", "{:.3f}"),
    ("fidelity", "fidelity", "{:.4f}"),
    ("tokens_run", "tokens run", "{:.1%}"),
    ("top1_on_teacher_tokens", "top-1 on teacher's tokens (%)", "{:.2f}"),
    ("params", "params (M)", "{:.4f}", 1e-6),
    ("macs", "MACs (M)", "{:.2f}", 1e-6),
)
"""Key in a model's row, heading, format (and scale): the metrics table shows those some model has."""
DELTAS = ("top1", "probe_top1")
"""Accuracies shown with their difference to the teacher's."""


def render_markdown(report: dict[str, Any]) -> str:
    rows = {name: report[name] for name in MODELS if name in report}
    lines = [f"# {report['recipe']}: {report['model']}", "", *_metrics_table(rows)]
    if "transfer" in report:
        transfer = report["transfer"]
        lines += ["", f"Started from the {transfer['use']} of the finished run {transfer['from_run']} (model.from_run)."]
    if "head" in report:
        lines += ["", f"Classifier: {report['head']}."]
    if "pruned" in report:
        lines += ["", f"Pruning kept {report['pruned']['kept_fraction']:.1%} of the LSTM hidden units (per block, head and direction: plots/kept_units.png)."]
    lines += ["", "| stage | kind | wall (s) |", "|---|---|---|"]
    lines += [f"| {s['name']} | {s['kind']} | {s['wall_s']:.1f} |" for s in report["stages"]]
    if "cost" in report:
        lines += ["", *cost_markdown(report["cost"]), "", "Energy by component: plots/energy.png."]
    return "\n".join(lines) + "\n"


def _metrics_table(rows: dict[str, dict[str, Any]]) -> list[str]:
    columns = [column for column in COLUMNS if any(column[0] in row for row in rows.values())]
    lengths = sorted({int(length) for row in rows.values() for length in row.get("latency_ms", {})})
    headings = [heading for key, heading, *_ in columns for heading in ([heading, "Δ vs teacher"] if key in DELTAS else [heading])]
    headings += [f"ORT ms @ {length} tokens" for length in lengths]
    lines = ["| model | " + " | ".join(headings) + " |", "|---" * (len(headings) + 1) + "|"]
    teacher = rows.get("teacher", {})
    for name, row in rows.items():
        cells = []
        for key, _, form, *scale in columns:
            cells.append(form.format(row[key] * (scale[0] if scale else 1)) if key in row else "")
            if key in DELTAS:
                cells.append(f"{row[key] - teacher[key]:+.2f}" if name != "teacher" and key in row and key in teacher else "")
        cells += [f"{row['latency_ms'][str(length)]:.2f}" if str(length) in row.get("latency_ms", {}) else "" for length in lengths]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def plot_kept_units(by_site: dict[str, Any], path: Path) -> None:
    """Rows: replaced sites (blocks); columns: head × direction; colour: fraction of hidden units kept."""
    plt = pyplot()
    sites = list(by_site)
    columns = [(row["head"], row["direction"]) for row in by_site[sites[0]]["units"]]
    grid = [[_kept(by_site[site], column) for column in columns] for site in sites]
    figure, axes = plt.subplots(figsize=(1.2 + 0.6 * len(columns), 1.0 + 0.35 * len(sites)))
    image = axes.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    axes.set_xticks(range(len(columns)), [f"h{head} {_SHORT[direction]}" for head, direction in columns], rotation=45, ha="right")
    for row, values in enumerate(grid):
        for column, value in enumerate(values):
            axes.text(column, row, f"{value:.0%}", ha="center", va="center", fontsize=7, color="white")
    axes.set_yticks(range(len(sites)), [site.removesuffix(".substitute") for site in sites])
    axes.set_title("hidden units kept after pruning")
    figure.colorbar(image, ax=axes, label="kept fraction")
    figure.tight_layout()
    save_figure(figure, path)


def _kept(site: dict[str, Any], column: tuple[int, str]) -> float:
    row = next((r for r in site["units"] if (r["head"], r["direction"]) == column), None)
    return row["kept"] if row else float("nan")
