"""Token-to-token dependency maps (paper §4.3, appendix C): the teacher's attention beside the student's saliency.

Attention states its dependencies: the mean softmax rows (`surgery.detect.sparsity`).
A substitute does not, so, as the paper does for FAR, its dependency of output
token i on input token j is read from gradients: the norm over channels of
∂ y_i / ∂ x_j, summed over the samples, rows normalised to sum to one. Maps are
drawn per site (all tokens) and, for the class token, as a patch-grid image per
teacher head beside the student's.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from surgery.detect.sparsity import SiteSparsity, validation_images
from surgery.figures import pyplot, save_figure
from surgery.models import input_size
from surgery.recipe import Recipe
from surgery.rewrite.adapters import SiteAdapter
from surgery.runs import RunDir, load_run


def saliency(module: nn.Module, inputs: list[torch.Tensor]) -> torch.Tensor:
    """(N, N) dependency of each output token on each input token of a (B, N, C) -> (B, N, C') module."""
    total = None
    for x in inputs:
        x = x.detach().requires_grad_(True)
        y = module(x)
        rows = []
        for token in range(y.shape[1]):
            (grad,) = torch.autograd.grad(y[:, token].sum(), x, retain_graph=token + 1 < y.shape[1])
            rows.append(grad.norm(dim=-1).sum(0))  # (N,): over channels, summed over samples
        matrix = torch.stack(rows)
        total = matrix if total is None else total + matrix
    assert total is not None, "saliency needs at least one input batch"
    return total / total.sum(-1, keepdim=True).clamp_min(1e-12)


def site_inputs(model: nn.Module, path: str, images: list[torch.Tensor]) -> list[torch.Tensor]:
    """What the module at `path` receives for each batch of `images`."""
    seen: list[torch.Tensor] = []
    handle = model.get_submodule(path).register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()) and None)
    try:
        with torch.no_grad():
            for batch in images:
                model(batch)
    finally:
        handle.remove()
    return seen


def plot_dependency(teacher: SiteSparsity, student: torch.Tensor, path: Path, prefix: int, title: str) -> None:
    """Three panels of one site: teacher attention (mean over heads), student saliency, and class-token rows per head."""
    plt = pyplot()
    assert teacher.attention is not None, "the teacher's attention maps come from attention_sparsity"
    heads = teacher.attention.shape[0]
    columns = 2 + (heads + 1 if prefix else 0)
    figure, axes = plt.subplots(1, columns, figsize=(3.2 * columns, 3.2), squeeze=False)
    for ax, matrix, name in zip(axes[0], (teacher.attention.mean(0), student), ("teacher attention", "student saliency")):
        ax.imshow(matrix.numpy(), cmap="magma")
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("input token")
        ax.set_ylabel("output token")
    if prefix:
        side = math.isqrt(student.shape[-1] - prefix)
        cls_rows = [*(teacher.attention[h, 0, prefix:] for h in range(heads)), student[0, prefix:]]
        names = [*(f"teacher head {h}: CLS→patch" for h in range(heads)), "student: CLS→patch"]
        for ax, row, name in zip(axes[0][2:], cls_rows, names):
            ax.imshow(row.reshape(side, side).numpy() if side * side == row.numel() else row[None].numpy(), cmap="viridis")
            ax.set_title(name, fontsize=8)
            ax.axis("off")
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    save_figure(figure, path, dpi=110)


def dependency_maps(run: RunDir, recipe: Recipe, teacher: list[SiteSparsity], batch_size: int = 16) -> list[Path]:
    """PNG per replaced token-sequence site of a finished run, in `<run>/plots/dependency/`; returns their paths.

    `teacher` is `surgery.analyze.sparsity.analyze` of the run: its attention maps are the teacher's side.
    """
    student = load_run(run.root).eval()
    adapters = {p: m for p, m in student.named_modules() if isinstance(m, SiteAdapter) and m.contract.layout == "tokens"}
    images = validation_images(recipe, student, input_size(student, recipe.model.input_size), 1, batch_size)
    written = []
    for attention in (result for result in teacher if result.path in adapters):
        adapter = adapters[attention.path]
        student_map = saliency(adapter, site_inputs(student, attention.path, images))
        target = run.plots / "dependency" / f"{attention.path}.png"
        plot_dependency(attention, student_map.detach(), target, adapter.contract.prefix, f"{attention.path}: token-to-token dependency")
        written.append(target)
    return written
