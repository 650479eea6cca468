"""The front of a search: predicted loss against the budgeted cost, with the uniform choices and the chosen mix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from surgery.figures import pyplot, save_figure
from surgery.recipe import METRIC_UNITS

SCORE_AXIS = {
    "task": "predicted loss (task-loss gain over the teacher)",
    "output_kl": "predicted loss (Σ output divergence, one site swapped)",
    "block_error": "predicted loss (Σ block-output error)",
}
"""The y axis for each predictor score (`surgery.search.predictor.SCORES`)."""


def plot_front(report: dict[str, Any], path: Path) -> None:
    """A step line through the front (`SearchResult.to_json()`), a marker per uniform choice, the budget as a line."""
    plt = pyplot()
    axis = report["axis"]
    unit, scale = METRIC_UNITS[axis]
    figure, axes = plt.subplots(figsize=(7.5, 4.5))
    front = report["front"]
    axes.step([mix["cost"][axis] * scale for mix in front], [mix["predicted"] for mix in front], where="post", marker=".", label="Pareto front")
    for label, mix in report["uniform"].items():
        axes.scatter(mix["cost"][axis] * scale, mix["predicted"], marker="s", label=f"all {label}")
    chosen = report["chosen"]
    axes.scatter(chosen["cost"][axis] * scale, chosen["predicted"], marker="*", s=200, color="black", zorder=3, label="chosen")
    if axis in report["budget"]:
        axes.axvline(report["budget"][axis] * scale, color="grey", linestyle="--", label="budget")
    axes.axvline(report["teacher"]["cost"][axis] * scale, color="grey", linestyle=":", label="teacher")
    axes.set_xlabel(f"{axis.replace('_', ' ')} per inference ({unit})")
    axes.set_ylabel(SCORE_AXIS[report["score"]])
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    figure.tight_layout()
    save_figure(figure, path)
