"""`surgery analyze`: attention sparsity of a run's trained teacher or a recipe's model, and its heatmaps."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from surgery.detect.sparsity import METRICS, SiteSparsity, measure_sites
from surgery.figures import pyplot, save_figure
from surgery.models import input_size, recipe_model
from surgery.runs import load_run
from surgery.targets import Target


def analyze(target: Target, batches: int = 4, batch_size: int = 64, top_fraction: float = 0.1) -> tuple[str, list[SiteSparsity]]:
    """Sparsity of every attention site of a run's trained teacher, or a recipe's model, on the recipe's validation data.

    Returns a description of the weights measured (trained, hub, or random) and one result per site.
    """
    recipe = target.recipe
    model, weights = _teacher(target)
    return weights, measure_sites(model, recipe, input_size(model, recipe.model.input_size), batches, batch_size, top_fraction)


def _teacher(target: Target) -> tuple[nn.Module, str]:
    if target.run is not None:
        return load_run(target.run.root, "teacher"), f"the trained teacher of {target.text}"
    spec = target.recipe.model
    model = recipe_model(target.recipe, weights=True)
    trained = spec.pretrained or spec.checkpoint is not None
    return model, f"{spec.name}, {'pretrained' if trained else 'random'} weights"


def plot_sparsity(results: list[SiteSparsity], path: Path, title: str) -> None:
    """One heatmap per measure, sites by heads (blank where a site has fewer heads)."""
    plt = pyplot()
    heads = max(len(r.heads["entropy"]) for r in results)
    figure, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 1 + 0.35 * len(results)), squeeze=False)
    for ax, metric in zip(axes[0], METRICS):
        grid = torch.full((len(results), heads), float("nan"))
        for row, result in enumerate(results):
            grid[row, : len(result.heads[metric])] = torch.tensor(result.heads[metric])
        image = ax.imshow(grid.numpy(), aspect="auto", vmin=0, vmax=1, cmap="viridis")
        ax.set_title(metric)
        ax.set_xlabel("head")
        ax.set_yticks(range(len(results)), [r.path for r in results], fontsize=7)
        figure.colorbar(image, ax=ax)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    save_figure(figure, path)
