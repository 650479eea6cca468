"""Token-to-token dependency maps of one site (paper §4.3): what each output token reads from each input token.

Attention states its dependencies: its softmax rows (`surgery.detect.sparsity`).
A substitute does not, so, as the paper does for FAR, the dependency of output
token i on input token j is read from gradients: the norm over channels of
∂ y_i / ∂ x_j (y_i summed over its channels), summed over the samples. Besides
the map of the whole substitute, a multi-head recurrent substitute gives one map
per head and direction: y is then that LSTM's own output, read where the
substitute's output projection receives it. Rows are normalised to sum to one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

HeadKey = tuple[int, str]
"""(head, direction): a head's forward or backward recurrence."""


@torch.enable_grad()
def saliency(module: Callable[[torch.Tensor], torch.Tensor], inputs: list[torch.Tensor]) -> torch.Tensor:
    """(N, N) dependency of each output token on each input token of a (B, N, C) -> (B, N, C') module, rows normalised."""
    total = sum(token_gradients(module(x), x) for x in _leaves(inputs))
    return normalise_rows(total)


@torch.enable_grad()
def head_saliency(site: Callable[[torch.Tensor], torch.Tensor], substitute: nn.Module, inputs: list[torch.Tensor]) -> dict[HeadKey, torch.Tensor]:
    """(N, N) map per (head, direction) of `substitute`, run by `site`; {} unless it has `unit_groups()` and an `out_proj`.

    Output token i of a head and direction is that recurrence's hidden state at token i, as the output
    projection receives it: in the order `site` hands tokens to the substitute (the site's own order
    when it reads in raster order), whatever order the direction reads in.
    """
    groups = _head_columns(substitute)
    if not groups:
        return {}
    totals: dict[HeadKey, torch.Tensor] = {}
    for x in _leaves(inputs):
        with _projection_input(substitute) as seen:
            site(x)
        if len(seen) != 1:
            raise ValueError(f"the substitute ran {len(seen)} times in one call of its site; per-head maps need one run")
        for key, columns in groups.items():
            totals[key] = totals.get(key, 0) + token_gradients(seen[0][..., columns], x)
    return {key: normalise_rows(total) for key, total in totals.items()}


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


def normalise_rows(matrix: torch.Tensor) -> torch.Tensor:
    """Each row divided by its sum (rows of zeros stay zero)."""
    return matrix / matrix.sum(-1, keepdim=True).clamp_min(1e-12)


def _leaves(inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each input as a fresh leaf that records gradients."""
    if not inputs:
        raise ValueError("a dependency map needs at least one input batch")
    return [x.detach().requires_grad_(True) for x in inputs]


def token_gradients(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(N_out, N_in): ‖∂ Σ_c y[b, i, c] / ∂ x[b, j]‖ over x's channels, summed over the batch b.

    Samples do not mix, so one backward pass per output token gives every sample's row at once.
    """
    rows = []
    for token in range(y.shape[1]):
        (grad,) = torch.autograd.grad(y[:, token].sum(), x, retain_graph=True, allow_unused=True)
        rows.append(x.new_zeros(x.shape[1]) if grad is None else grad.norm(dim=-1).sum(0))  # (N_in,)
    return torch.stack(rows).detach()


def _head_columns(substitute: nn.Module) -> dict[HeadKey, slice]:
    """(head, direction) -> its columns of the output projection's input, for substitutes that expose unit groups."""
    if not hasattr(substitute, "unit_groups") or not isinstance(getattr(substitute, "out_proj", None), nn.Linear):
        return {}
    columns, offset = {}, 0
    for group in substitute.unit_groups():  # in out_proj column order
        columns[group.key] = slice(offset, offset + group.size)
        offset += group.size
    return columns


@contextmanager
def _projection_input(substitute: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collects what the substitute's `out_proj` receives: the heads' outputs side by side, (B, N, Σ hidden)."""
    seen: list[torch.Tensor] = []
    handle = substitute.out_proj.register_forward_pre_hook(lambda _m, args: seen.append(args[0]) and None)
    try:
        yield seen
    finally:
        handle.remove()
