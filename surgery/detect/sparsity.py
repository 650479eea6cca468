"""How sparse each site's attention is on real inputs: which layers a substitute can replace at least cost.

"From Sparsity to Simplicity" (shared/papers/related-abstracts.txt) finds that
layers whose attention rows are sparse lose least when replaced. The rows are
read where attention computes them: every softmax called inside a site, and
every `scaled_dot_product_attention`, whose probabilities are recomputed from
its q, k (and mask) because the fused kernel never materialises them. Per site
and head, over all rows of all batches:

- `entropy`: mean row entropy over log N (0: one key takes all, 1: uniform);
- `top_mass`: mean share of a row's mass on its top `top_fraction` of keys;
- `hoyer`: mean Hoyer sparsity of rows, (√N − ‖p‖₁/‖p‖₂) / (√N − 1), 0 to 1.

Low entropy, high top mass and high Hoyer all say sparse.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from hwmodel.tracking import ModuleStack
from surgery.data import build_val_loader
from surgery.detect.sites import find_sites
from surgery.errors import SurgeryError
from surgery.models import example_input
from surgery.recipe import Recipe

_SOFTMAX = {torch.softmax, F.softmax, torch.Tensor.softmax}
METRICS = ("entropy", "top_mass", "hoyer")


@dataclass
class SiteSparsity:
    """Sparsity of one site's attention, per head and averaged over heads."""

    path: str
    heads: dict[str, list[float]] = field(default_factory=dict)
    """metric -> one value per head."""
    rows: int = 0
    attention: torch.Tensor | None = field(default=None, repr=False)
    """Mean attention probabilities per head over all inputs, (H, N_q, N_k): the teacher's dependency map."""

    def mean(self, metric: str) -> float:
        values = self.heads[metric]
        return sum(values) / len(values)

    def to_json(self) -> dict[str, object]:
        return {"path": self.path, "rows": self.rows, **{m: self.mean(m) for m in METRICS}, "per_head": self.heads}


class _Rows(TorchFunctionMode):
    """Collects attention rows (..., H, N, N) per site while the model runs."""

    def __init__(self, stack: ModuleStack, top_fraction: float) -> None:
        super().__init__()
        self.stack, self.top_fraction = stack, top_fraction
        self.sums: dict[str, torch.Tensor] = {}  # path -> (3, H) sums of the metrics
        self.maps: dict[str, torch.Tensor] = {}  # path -> (H, N_q, N_k) sum of attention rows
        self.rows: dict[str, int] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        path = self.stack.current
        if path is not None and func in _SOFTMAX and isinstance(result, torch.Tensor) and result.dim() >= 3:
            self._add(path, result)
        elif path is not None and func is F.scaled_dot_product_attention:  # inside the handler this mode is off
            self._add(path, _probabilities(*args[:3], kwargs.get("attn_mask", args[3] if len(args) > 3 else None), kwargs))
        return result

    def _add(self, path: str, probs: torch.Tensor) -> None:
        probs = probs.detach().float()
        rows = probs.reshape(-1, *probs.shape[-3:]) if probs.dim() >= 4 else probs.unsqueeze(1)  # (B, H, N, N)
        values = torch.stack(row_metrics(rows, self.top_fraction)).sum(dim=(1, 3))  # (3, H)
        self.sums[path] = self.sums.get(path, 0) + values
        if path not in self.maps or self.maps[path].shape == rows.shape[1:]:  # the first shape seen (windows differ in count only)
            self.maps[path] = self.maps.get(path, 0) + rows.sum(0)
        self.rows[path] = self.rows.get(path, 0) + rows.shape[0] * rows.shape[2]  # rows per head


def row_metrics(rows: torch.Tensor, top_fraction: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Entropy / log N, top-fraction mass and Hoyer sparsity of every row of (B, H, N_q, N_k) probabilities."""
    keys = rows.shape[-1]
    entropy = -(rows * rows.clamp_min(1e-12).log()).sum(-1) / math.log(keys) if keys > 1 else torch.zeros(rows.shape[:-1])
    top = max(1, round(top_fraction * keys))
    top_mass = rows.topk(top, dim=-1).values.sum(-1) / rows.sum(-1).clamp_min(1e-12)
    ratio = rows.abs().sum(-1) / rows.norm(dim=-1).clamp_min(1e-12)
    hoyer = (math.sqrt(keys) - ratio) / (math.sqrt(keys) - 1) if keys > 1 else torch.ones(rows.shape[:-1])
    return entropy, top_mass, hoyer


def _probabilities(q: torch.Tensor, k: torch.Tensor, _v: torch.Tensor, mask: torch.Tensor | None, kwargs: dict) -> torch.Tensor:
    """softmax(q kᵀ · scale + mask), what the fused kernel computes without storing."""
    scale = kwargs.get("scale") or 1 / math.sqrt(q.shape[-1])
    scores = q @ k.transpose(-2, -1) * scale
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    return scores.softmax(-1)


@torch.no_grad()
def attention_sparsity(model: nn.Module, sites: list[str], batches: Iterable[torch.Tensor], top_fraction: float = 0.1) -> list[SiteSparsity]:
    """Sparsity of every site's attention rows over `batches` of model inputs (the model runs in eval mode)."""
    stack = ModuleStack({path: model.get_submodule(path) for path in sites})
    mode = _Rows(stack, top_fraction)
    model.eval()
    with stack, mode:
        for images in batches:
            model(images)
    results = []
    for path in sites:
        if path not in mode.sums:
            raise ValueError(f"{path}: no attention rows seen (no softmax or scaled_dot_product_attention ran inside it)")
        means = mode.sums[path] / mode.rows[path]
        attention = mode.maps[path] / mode.maps[path].sum(-1, keepdim=True).clamp_min(1e-12)
        results.append(SiteSparsity(path, {m: means[i].tolist() for i, m in enumerate(METRICS)}, mode.rows[path], attention))
    return results


def measure_sites(
    model: nn.Module, recipe: Recipe, size: tuple[int, int, int], batches: int = 4, batch_size: int = 64, top_fraction: float = 0.1
) -> list[SiteSparsity]:
    """Sparsity of every site of `model` on the first `batches` validation batches of `recipe`'s data."""
    if recipe.data is None:
        raise SurgeryError(f"recipe {recipe.name!r} has no data section to measure attention sparsity on")
    sites = [site.path for site in find_sites(model, example_input(model, size))]
    device = next(model.parameters()).device
    images = [batch.to(device) for batch in validation_images(recipe, model, size, batches, batch_size)]
    return attention_sparsity(model, sites, images, top_fraction)


def validation_images(recipe: Recipe, model: nn.Module, size: tuple[int, int, int], batches: int, batch_size: int) -> list[torch.Tensor]:
    """The first `batches` batches of the recipe's validation split, preprocessed for `model`."""
    loader = build_val_loader(recipe.data, size, batch_size, seed=recipe.seed, model=model)
    return [batch for batch, _ in itertools.islice(loader, batches)]
