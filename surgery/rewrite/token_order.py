"""The order in which a recurrent substitute reads a 2-D grid of tokens.

An image has no natural 1-D order; a recurrence sees one. `raster` (row by row,
the paper's default and the order timm already uses) needs no grid;
the others do:

- `snake`: row by row, every other row reversed, so consecutive tokens are
  always neighbours in the image;
- `column`: column by column;
- `multiscan`: the substitute reads raster, snake, column and column-snake
  orders and its outputs, each put back in raster order, are averaged (four
  times the substitute's cost).

Prefix tokens (class, register) stay in front in every order. Each reordering
is a permutation given as reshapes, flips and transposes, so it traces in
torch.fx and exports to ONNX; every order is undone exactly on the way out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

TokenOrder = Literal["raster", "snake", "column", "multiscan"]
TOKEN_ORDERS: tuple[TokenOrder, ...] = ("raster", "snake", "column", "multiscan")

Mixer = Callable[[torch.Tensor], torch.Tensor]
"""A substitute: (B, N, C) tokens in, (B, N, C') out."""


def in_order(
    substitute: Mixer, tokens: torch.Tensor, order: TokenOrder, grid: tuple[int, int] | None, prefix: int = 0
) -> torch.Tensor:
    """`substitute` applied to (B, prefix + h·w, C) raster `tokens` read in `order`; output in raster order."""
    if order == "raster":
        return substitute(tokens)
    if grid is None:
        raise ValueError(f"token order {order!r} needs the token grid, which this site does not give")
    scans = ("raster", "snake", "column", "column_snake") if order == "multiscan" else (order,)
    outputs = [_from(scan, substitute(_to(scan, tokens, grid, prefix)), grid, prefix) for scan in scans]
    return outputs[0] if len(outputs) == 1 else torch.stack(outputs).mean(0)


def _to(scan: str, tokens: torch.Tensor, grid: tuple[int, int], prefix: int) -> torch.Tensor:
    head, image = _split(tokens, grid, prefix)  # image: (B, h, w, C)
    if scan.startswith("column"):
        image = image.transpose(1, 2)
    if scan.endswith("snake"):
        image = _reverse_odd_rows(image)
    return torch.cat([head, image.flatten(1, 2)], dim=1)


def _from(scan: str, tokens: torch.Tensor, grid: tuple[int, int], prefix: int) -> torch.Tensor:
    h, w = grid
    head, image = _split(tokens, (w, h) if scan.startswith("column") else grid, prefix)
    if scan.endswith("snake"):
        image = _reverse_odd_rows(image)
    if scan.startswith("column"):
        image = image.transpose(1, 2)
    return torch.cat([head, image.flatten(1, 2)], dim=1)


def _split(tokens: torch.Tensor, grid: tuple[int, int], prefix: int) -> tuple[torch.Tensor, torch.Tensor]:
    return tokens[:, :prefix], tokens[:, prefix:].unflatten(1, grid)


def _reverse_odd_rows(image: torch.Tensor) -> torch.Tensor:
    """Rows 1, 3, 5, ... of (B, h, w, C) reversed along w; its own inverse."""
    odd = (torch.arange(image.shape[1], device=image.device) % 2 == 1).view(1, -1, 1, 1)
    return torch.where(odd, image.flip(2), image)
