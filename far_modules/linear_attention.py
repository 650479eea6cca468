"""Kernelised linear attention (Katharopoulos et al., 2020): attention without the N x N matrix.

softmax(q kᵀ) v is replaced by φ(q) (φ(k)ᵀ v) / (φ(q) Σ φ(k)), with a positive
feature map φ; the cost is linear in N. Its products are still between two
activations, so a crossbar must be written for them, like attention's.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from far_modules.padding import check_mask
from far_modules.spec import CostKind, SiteSpec

FeatureMap = Literal["elu", "relu"]


class LinearAttention(nn.Module):
    """Multi-head, non-causal linear attention, (B, N, D) -> (B, N, D_out).

    Args:
        dim: token width D.
        num_heads: heads; each reads D / heads channels.
        feature_map: φ, `elu` (elu + 1, the original) or `relu`.
        out_dim: output width (default `dim`).
    """

    cost_kind: CostKind = "activation_products"

    def __init__(self, dim: int, num_heads: int, feature_map: FeatureMap = "elu", out_dim: int | None = None, eps: float = 1e-6) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"heads={num_heads} does not divide the site's width {dim}")
        if feature_map not in ("elu", "relu"):
            raise ValueError(f"feature_map must be 'elu' or 'relu', got {feature_map!r}")
        self.num_heads, self.feature_map, self.eps = num_heads, feature_map, eps
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, out_dim or dim)

    @classmethod
    def from_site(cls, spec: SiteSpec, *, source: nn.Module | None = None, feature_map: FeatureMap = "elu") -> LinearAttention:
        """Heads from the site (the largest count not above them that divides its width)."""
        heads = max(h for h in range(1, max(spec.num_heads, 1) + 1) if spec.dim % h == 0)
        return cls(spec.dim, heads, feature_map, spec.out_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, N, D) -> (B, N, D_out); `mask` (B, N) bool, True at real tokens, leaves padded keys and values out."""
        q, k, v = self.qkv(x).unflatten(-1, (3, self.num_heads, -1)).permute(2, 0, 3, 1, 4)  # 3 x (B, H, N, d)
        q, k = self._phi(q), self._phi(k)
        if mask is not None:
            check_mask(mask, x)
            real = mask[:, None, :, None]  # (B, 1, N, 1)
            k, v = k.masked_fill(~real, 0), v.masked_fill(~real, 0)
        context = k.transpose(-2, -1) @ v  # (B, H, d, d): Σ_n φ(k_n) v_nᵀ
        normaliser = q @ k.sum(dim=-2, keepdim=True).transpose(-2, -1)  # (B, H, N, 1)
        out = (q @ context) / (normaliser + self.eps)
        return self.proj(out.transpose(1, 2).flatten(2))

    def _phi(self, x: torch.Tensor) -> torch.Tensor:
        return F.elu(x) + 1 if self.feature_map == "elu" else F.relu(x)
