"""Depthwise 1-D convolution over tokens: a fixed local mixing window instead of attention."""

from __future__ import annotations

import torch
from torch import nn

from far_modules.padding import leading, readings
from far_modules.spec import CostKind, SiteSpec


class TokenConv(nn.Module):
    """x (B, N, D) -> LayerNorm -> Linear -> depthwise Conv1d along N -> GELU -> Linear(D, D_out).

    Every channel mixes the `kernel_size` tokens around each position; no token
    sees beyond that window, which is the point of the comparison.
    """

    cost_kind: CostKind = "weights"

    def __init__(self, dim: int, kernel_size: int = 7, out_dim: int | None = None) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer (it keeps N), got {kernel_size!r}")
        self.norm = nn.LayerNorm(dim)
        self.in_proj = nn.Linear(dim, dim)
        self.conv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.act = nn.GELU()
        self.out_proj = nn.Linear(dim, out_dim or dim)

    @classmethod
    def from_site(cls, spec: SiteSpec, *, source: nn.Module | None = None, kernel_size: int = 7) -> TokenConv:
        """`kernel_size` tokens per window (odd)."""
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int):
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size!r}")
        return cls(spec.dim, kernel_size, spec.out_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, N, D) -> (B, N, D_out); with `mask` (B, N, bool, True at real tokens) the window sees real tokens
        and, past a sequence's end, zeros, as the convolution's own padding gives an unpadded sequence."""
        y = self.in_proj(self.norm(x))
        reading, _ = readings(x, mask)
        if mask is not None:
            y = reading.read(y).masked_fill(~leading(mask), 0)
        y = self.act(self.conv(y.transpose(1, 2))).transpose(1, 2)  # Conv1d reads (B, D, N)
        return self.out_proj(reading.write(y))
