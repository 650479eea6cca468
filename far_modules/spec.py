"""What a substitute needs to know about the attention it replaces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CostKind = Literal["recurrent", "weights", "activation_products", "none"]
"""How a substitute's work looks to a cost model, declared by each substitute class as `cost_kind`:
`recurrent` steps (LSTM, GRU, a selective scan), weight-stationary GEMMs and convolutions (`weights`),
products of two activations that crossbars must be written for (`activation_products`), or `none`."""


@dataclass(frozen=True)
class SiteSpec:
    """Shapes of one attention site, as the rewrite found them.

    Attributes:
        dim: width of the tokens entering and leaving the site (C of (B, N, C)).
        num_heads: attention heads at the site.
        head_dim: width of one head's queries and keys.
        seq_len: tokens per sequence when known from the example input.
        out_dim: width of the tokens leaving the site when it differs from `dim`.
    """

    dim: int
    num_heads: int
    head_dim: int
    seq_len: int | None = None
    out_dim: int | None = None
