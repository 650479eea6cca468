"""The stacked bar of energy by component, teacher beside student."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from surgery.figures import pyplot, save_figure

_LABELS = {
    "adc": "ADCs",
    "other_analog": "other analog (cells, DACs, S&H, shift-add)",
    "digital": "digital units",
    "traffic": "buffers and interconnect",
    "write": "crossbar writes",
}


def plot_energy(cost: dict[str, Any], path: Path) -> None:
    """One bar per model, one segment per energy component of `CostReport.to_json()`, in µJ."""
    plt = pyplot()
    models = ("teacher", "student")
    figure, axes = plt.subplots(figsize=(8.0, 4.0))
    bottoms = [0.0, 0.0]
    for key, label in _LABELS.items():
        heights = [cost[model]["energy_by_component_j"][key] * 1e6 for model in models]
        axes.bar(models, heights, bottom=bottoms, label=label)
        bottoms = [b + h for b, h in zip(bottoms, heights)]
    axes.set_ylabel("energy per inference (µJ)")
    axes.set_title(f"{cost['device']}, {cost['policy']} policy, input {'×'.join(map(str, cost['input_size']))}")
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    figure.tight_layout()
    save_figure(figure, path)
