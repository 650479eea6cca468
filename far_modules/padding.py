"""Padding in a batch of sequences: a substitute must give every real token the output it would have alone.

Attention honours a padding mask by giving padded keys no weight. A recurrence
has no keys: it runs through whatever sits in the sequence. Each substitute
therefore reads its sequences through `real_first`: a per-sequence gather that
puts the real tokens first (in order for a forward pass, reversed for a
backward one) and the padding after them, where it cannot reach a real token.
`restore` puts the outputs back in place. The gathers are ordinary tensor ops,
so torch.fx and the ONNX exporter see nothing special, and a call without a
mask (images) never runs them.

A mask is (B, N) bool, True at real tokens: Hugging Face's `attention_mask`
convention. Any pattern works: right, left, or holes in the middle.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Reading:
    """How one direction of a substitute reads a batch: `read` before the sequence op, `write` after it."""

    index: torch.Tensor | None = None
    """Per-sequence order (B, N) from `real_first`; None: every token is real."""
    backward: bool = False

    def read(self, x: torch.Tensor) -> torch.Tensor:
        if self.index is not None:
            return gather_tokens(x, self.index)
        return x.flip(1) if self.backward else x

    def write(self, y: torch.Tensor) -> torch.Tensor:
        if self.index is not None:
            return restore(y, self.index)
        return y.flip(1) if self.backward else y


def readings(x: torch.Tensor, mask: torch.Tensor | None) -> tuple[Reading, Reading]:
    """(forward, backward) readings of x (B, N, C): plain and flipped without a mask, real tokens first with one."""
    if mask is None:
        return Reading(), Reading(backward=True)
    check_mask(mask, x)
    return Reading(real_first(mask)), Reading(real_first(mask, reverse=True), backward=True)


def real_first(mask: torch.Tensor, *, reverse: bool = False) -> torch.Tensor:
    """(B, N) token indices: each row's real positions (ascending, or descending with `reverse`), then its padding.

    Example:
        >>> real_first(torch.tensor([[True, True, False, True]]), reverse=True).tolist()
        [[3, 1, 0, 2]]
    """
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    rank = (mask.shape[1] - 1 - positions) if reverse else positions
    return torch.argsort(torch.where(mask, rank, mask.shape[1] + positions), dim=1)


def gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x (B, N, C) reordered along N by `index` (B, N)."""
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


def restore(y: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Undo `gather_tokens(., index)` on a (B, N, C) output."""
    return gather_tokens(y, torch.argsort(index, dim=1))


def leading(mask: torch.Tensor) -> torch.Tensor:
    """(B, N, 1) bool: True on each row's first (real-token count) positions, where `real_first` puts the real tokens."""
    positions = torch.arange(mask.shape[1], device=mask.device)
    return (positions < mask.sum(1, keepdim=True)).unsqueeze(-1)


def check_mask(mask: torch.Tensor | None, x: torch.Tensor) -> None:
    """A mask must be (B, N) bool for x (B, N, C)."""
    if mask is not None and (mask.dtype != torch.bool or tuple(mask.shape) != tuple(x.shape[:2])):
        raise ValueError(f"mask must be a (B, N) = {tuple(x.shape[:2])} bool tensor, True at real tokens; got {mask.dtype} {tuple(mask.shape)}")
