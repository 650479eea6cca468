"""What a substitute needs to know about the attention it replaces."""

from __future__ import annotations

from dataclasses import dataclass


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
