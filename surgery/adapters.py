"""The site adapter gives a sequence substitute the call contract of the module it replaces.

A substitute maps (B, N, C) -> (B, N, C). The adapter accepts the replaced
module's whole call (its forward signature), turns 2-D inputs into token
sequences and back, reads the sequence in the recipe's token order, keeps only
the class token where the replaced module returned only that, and handles each
extra argument by its role in the `SiteContract`. An argument without a role
must be left at the replaced module's default: a value the substitute cannot
honour is refused at run time, never dropped silently.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from surgery.contracts import SiteContract
from surgery.token_order import TokenOrder, in_order


class SiteAdapter(nn.Module):
    """Wraps a (B, N, C) -> (B, N, C) substitute in the replaced module's signature and layout.

    Args:
        substitute: the module that does the work; its weights live under `substitute.`.
        replaced: the module being replaced; only its forward signature is kept.
        contract: how the replaced module is called (see `surgery.contracts`).
        path: module path of the site, for error messages.
        order: the token order the substitute reads a grid in.
    """

    def __init__(self, substitute: nn.Module, replaced: nn.Module, contract: SiteContract, path: str, order: TokenOrder = "raster") -> None:
        super().__init__()
        self.substitute = substitute
        self.contract = contract
        self.path = path
        self.order = order
        parameters = list(inspect.signature(replaced.forward).parameters.values())
        self.extra_defaults = {p.name: p.default for p in parameters[1:] if p.kind is not p.VAR_KEYWORD}
        self.positional = [p.name for p in parameters[1:] if p.kind is p.POSITIONAL_OR_KEYWORD]

    def forward(self, x: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        grid = self.contract.grid
        for name, value in [*zip(self.positional, args), *kwargs.items()]:
            role = self.contract.roles.get(name)
            if role == "grid":
                grid = (value[0], value[1])
            elif role is None and (name not in self.extra_defaults or not _is_default(value, self.extra_defaults[name])):
                raise ValueError(f"{self.path}: substitute called with {name}={value!r}; it only takes the token input")
        if self.contract.layout == "channels_first":
            height, width = x.shape[2], x.shape[3]
            y = self._mix(x.flatten(2).transpose(1, 2), (height, width))
            return y.transpose(1, 2).unflatten(2, (height, width))
        if self.contract.layout == "channels_last":
            height, width = x.shape[1], x.shape[2]
            return self._mix(x.flatten(1, 2), (height, width)).unflatten(1, (height, width))
        y = self._mix(x, grid)
        return y[:, :1] if self.contract.output == "class_token" else y

    def _mix(self, tokens: torch.Tensor, grid: tuple[int, int] | None) -> torch.Tensor:
        return in_order(self.substitute, tokens, self.order, grid, self.contract.prefix)

    def extra_repr(self) -> str:
        return f"{self.path}: {self.contract.describe}, order={self.order}"


def _is_default(value: object, default: object) -> bool:
    return value is default or (not isinstance(value, torch.Tensor) and value == default)
