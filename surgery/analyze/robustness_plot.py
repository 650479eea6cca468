"""The robustness figure: top-1 against programming sigma and against read time, one line per model and policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from surgery.analyze.robustness import Robustness, Setting
from surgery.figures import pyplot, save_figure


def plot_robustness(result: Robustness, path: Path) -> Path:
    """A panel per kind of setting swept (sigma read at once; read time at the device's sigma), mean ± std over seeds as
    error bars; the ideal device's top-1 of each model as a dotted line. Written atomically."""
    plt = pyplot()
    drifts = any(setting.time_s > 0 for setting in result.settings)
    figure, panels = plt.subplots(1, 2 if drifts else 1, figsize=(10 if drifts else 5.5, 4), sharey=True, squeeze=False)
    by_sigma, by_time = panels[0][0], panels[0][1] if drifts else None
    summaries = result.to_json()
    for index, (name, rows) in enumerate((name, summaries[name]) for name in result.top1):
        colour = f"C{index}"
        for axes in panels[0]:
            ideal = [row for setting, row in zip(result.settings, rows) if setting.ideal]
            if ideal:
                axes.axhline(ideal[0]["top1_mean"], color=colour, linestyle=":", linewidth=1)
        for policy, marker in (("write", "o"), ("digital", "s")):
            _line(by_sigma, result.settings, rows, lambda s, p=policy: s.policy == p and s.time_s == 0, lambda s: 100 * s.programming_sigma, f"{name}, {policy}", colour, marker)
            if by_time is not None:
                _line(by_time, result.settings, rows, lambda s, p=policy: s.policy == p and s.time_s > 0, lambda s: s.time_s, f"{name}, {policy}", colour, marker)
    by_sigma.set(xlabel="programming σ (% of each cell's conductance)", ylabel="top-1 (%)", title="programmed, read at once")
    if by_time is not None:
        by_time.set(xlabel="time since programming (s)", xscale="log", title="drift, at the device's σ")
    for axes in panels[0]:
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize="small")
        axes.grid(alpha=0.3)
    figure.tight_layout()
    return save_figure(figure, path)


def _line(axes: Any, settings: list[Setting], rows: list[dict], keep: Any, x: Any, label: str, colour: str, marker: str) -> None:
    points = [(x(s), row["top1_mean"], row["top1_std"] or 0.0) for s, row in zip(settings, rows) if not s.ideal and keep(s)]
    if points:
        xs, means, stds = zip(*sorted(points))
        axes.errorbar(xs, means, yerr=stds, label=label, color=colour, marker=marker, capsize=3, linestyle="-" if marker == "o" else "--")
