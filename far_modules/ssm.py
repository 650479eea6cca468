"""A diagonal selective state-space scan (Mamba-style, Gu & Dao 2023) in plain PyTorch.

Per channel c and state s: h_t = exp(Δ_t A_cs) h_{t-1} + Δ_t B_t x_t and
y_t = C_t · h_t + D_c x_t, where Δ_t, B_t and C_t are computed from the token
(the selection), A is diagonal and negative, so the state decays. The scan is
a Python loop over tokens: exact and exportable (the ONNX graph holds it
unrolled), slow for long sequences. `bidirectional` adds a backward scan,
because an image has no causal direction.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from far_modules.padding import readings
from far_modules.spec import CostKind, SiteSpec


class SelectiveSSM(nn.Module):
    """x (B, N, D) -> LayerNorm -> Linear to (x, z) -> selective scan(s) of x -> y · SiLU(z) -> Linear(D, D_out).

    Args:
        dim: token width D.
        state_size: states per channel.
        bidirectional: also scan the tokens backwards and add the two.
        out_dim: output width (default `dim`).
    """

    cost_kind: CostKind = "recurrent"

    def __init__(self, dim: int, state_size: int = 8, bidirectional: bool = True, out_dim: int | None = None) -> None:
        super().__init__()
        self.state_size, self.bidirectional = state_size, bidirectional
        self.norm = nn.LayerNorm(dim)
        self.in_proj = nn.Linear(dim, 2 * dim)
        self.selection = nn.Linear(dim, dim + 2 * state_size)  # Δ (per channel), B and C (per state)
        self.a_log = nn.Parameter(torch.log(torch.arange(1, state_size + 1, dtype=torch.float32)).repeat(dim, 1))  # S4D-real init
        self.skip = nn.Parameter(torch.ones(dim))
        self.out_proj = nn.Linear(dim, out_dim or dim)

    @classmethod
    def from_site(cls, spec: SiteSpec, *, source: nn.Module | None = None, state_size: int = 8, bidirectional: bool = True) -> SelectiveSSM:
        if isinstance(state_size, bool) or not isinstance(state_size, int) or state_size < 1:
            raise ValueError(f"state_size must be a positive integer, got {state_size!r}")
        if not isinstance(bidirectional, bool):
            raise ValueError(f"bidirectional must be true or false, got {bidirectional!r}")
        return cls(spec.dim, state_size, bidirectional, spec.out_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, N, D) -> (B, N, D_out); `mask` (B, N) bool marks the real tokens of padded sequences (`far_modules.padding`)."""
        u, z = self.in_proj(self.norm(x)).chunk(2, dim=-1)  # (B, N, D) each
        forward, backward = readings(x, mask)
        y = forward.write(self._scan(forward.read(u)))
        if self.bidirectional:
            y = y + backward.write(self._scan(backward.read(u)))
        return self.out_proj(y * F.silu(z))

    def _scan(self, u: torch.Tensor) -> torch.Tensor:
        delta, b, c = self.selection(u).split([u.shape[-1], self.state_size, self.state_size], dim=-1)
        delta = F.softplus(delta)  # (B, N, D)
        decay = torch.exp(delta.unsqueeze(-1) * -torch.exp(self.a_log))  # (B, N, D, S)
        drive = (delta * u).unsqueeze(-1) * b.unsqueeze(-2)  # (B, N, D, S)
        state = u.new_zeros(u.shape[0], u.shape[2], self.state_size)
        outputs = []
        for t in range(u.shape[1]):
            state = decay[:, t] * state + drive[:, t]
            outputs.append((state * c[:, t].unsqueeze(1)).sum(-1))  # (B, D)
        return torch.stack(outputs, dim=1) + u * self.skip
