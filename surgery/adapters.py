"""Adapters give a substitute the call contract of the module it replaces.

A timm block calls its attention as `attn(x, attn_mask=None, is_causal=False)`;
a substitute only maps (B, N, C) tokens. The adapter accepts the full call,
lets through arguments left at the replaced module's defaults, and refuses any
other value at run time (a mask the substitute cannot honour must not be dropped
silently).
"""

from __future__ import annotations

import inspect

import torch
from torch import nn


class TokenAdapter(nn.Module):
    """Wraps a (B, N, C) -> (B, N, C) substitute in the replaced module's signature.

    Args:
        substitute: the module that does the work; its weights live under `substitute.`.
        replaced: the module being replaced; only its forward signature is kept.
        path: module path of the site, for error messages.
    """

    def __init__(self, substitute: nn.Module, replaced: nn.Module, path: str) -> None:
        super().__init__()
        self.substitute = substitute
        self.path = path
        parameters = list(inspect.signature(replaced.forward).parameters.values())
        self.extra_defaults = {p.name: p.default for p in parameters[1:] if p.kind is not p.VAR_KEYWORD}
        self.positional = [p.name for p in parameters[1:] if p.kind is p.POSITIONAL_OR_KEYWORD]

    def forward(self, x: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        for name, value in [*zip(self.positional, args), *kwargs.items()]:
            if name not in self.extra_defaults or not _is_default(value, self.extra_defaults[name]):
                raise ValueError(f"{self.path}: substitute called with {name}={value!r}; it only takes the token input")
        return self.substitute(x)


def _is_default(value: object, default: object) -> bool:
    return value is default or (not isinstance(value, torch.Tensor) and value == default)
