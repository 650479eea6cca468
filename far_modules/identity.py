"""Drop the attention: the block keeps its residual and MLP, the attention branch adds nothing."""

from __future__ import annotations

import torch
from torch import nn

from far_modules.spec import CostKind, SiteSpec


class DropAttention(nn.Module):
    """Returns zeros of the site's output shape, so `x + attn(x)` becomes `x`.

    The baseline of "What matters in transformers? Not all attention is
    needed": removing an attention sublayer outright. No parameters, so a
    distillation stage has nothing to train at these sites.
    """

    cost_kind: CostKind = "none"

    def __init__(self, out_dim: int) -> None:
        super().__init__()
        self.out_dim = out_dim

    @classmethod
    def from_site(cls, spec: SiteSpec, *, source: nn.Module | None = None) -> DropAttention:
        return cls(spec.out_dim or spec.dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Zeros; `mask` (padding) changes nothing, since no token reads another."""
        return x.new_zeros(*x.shape[:-1], self.out_dim)
