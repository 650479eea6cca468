"""The site adapter gives a sequence substitute the call contract of the module it replaces.

A substitute maps (B, N, C) -> (B, N, C). The adapter accepts the replaced
module's whole call (its forward signature) and, as the site's `SiteContract`
says: turns 2-D inputs into token sequences and back, reads the sequence in the
recipe's token order, keeps only the class token where the replaced module
returned only that, averages the sequence where it pooled the tokens into one
vector, downsamples the grid where the replaced module is strided
(with its own pooling layer when it has one), and rewrites a block that
computes attention inline around the substitute (`surgery.rewrite.inline`). It keeps
the replaced module's plain attributes (sizes, flags), which some blocks read
off their attention. Extra arguments are handled by their role; one without a
role must be left at the replaced module's default (None for a keyword its
`**kwargs` gathers): a value the substitute cannot honour is refused at run
time, never dropped silently. A padding mask becomes the substitute's `mask`
of real tokens, and a site that returned `(output, None)` gets that tuple back.
"""

from __future__ import annotations

import copy
import inspect

import torch
from torch import nn

from surgery.detect.contracts import SiteContract
from surgery.rewrite.inline import SUBSTITUTE, inline_rewrite
from surgery.rewrite.token_order import TokenOrder, in_order


class SiteAdapter(nn.Module):
    """Wraps a (B, N, C) -> (B, N, C) substitute in the replaced module's signature and layout.

    Args:
        substitute: the module that does the work; its weights live under `substitute.`.
        replaced: the module being replaced; only its forward signature is kept.
        contract: how the replaced module is called (see `surgery.detect.contracts`).
        path: module path of the site, for error messages.
        order: the token order the substitute reads a grid in.
    """

    def __init__(self, substitute: nn.Module, replaced: nn.Module, contract: SiteContract, path: str, order: TokenOrder = "raster") -> None:
        super().__init__()
        self.contract = contract
        if contract.inline_input is None:
            self.substitute = substitute
        else:  # the substitute lives inside the rewritten block, with the block's other weights
            self.block = inline_rewrite(copy.deepcopy(replaced), contract.inline_input, substitute)
        self.path = path
        self.order = order
        pool = getattr(replaced, "pool", None)
        self.pool = copy.deepcopy(pool) if isinstance(pool, (nn.AvgPool2d, nn.MaxPool2d)) and contract.stride > 1 else None
        for name, value in vars(replaced).items():  # sizes and flags the parent block may read off its attention
            if not name.startswith("_") and isinstance(value, (int, float, str, tuple)) and not hasattr(self, name):
                setattr(self, name, value)
        parameters = list(inspect.signature(replaced.forward).parameters.values())
        self.extra_defaults = {p.name: p.default for p in parameters[1:] if p.kind is not p.VAR_KEYWORD}
        self.takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in parameters)
        self.positional = [p.name for p in parameters[1:] if p.kind is p.POSITIONAL_OR_KEYWORD]

    def forward(self, x: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor | tuple[torch.Tensor | None, ...]:
        grid, mask = self.contract.grid, None
        for name, value in [*zip(self.positional, args), *kwargs.items()]:
            role = self.contract.roles.get(name)
            if role == "grid":
                grid = (value[0], value[1])
            elif role == "padding" and value is not None:
                mask = real_tokens(value, self.path)
            elif role is None and not self._at_default(name, value):
                raise ValueError(f"{self.path}: substitute called with {name}={value!r}; it only takes the token input")
        y = self._adapt(x, grid, mask)
        return (y, *[None] * self.contract.output_nones) if self.contract.output_nones else y

    def _at_default(self, name: str, value: object) -> bool:
        """`value` is the replaced forward's default for `name`; a keyword its `**kwargs` gathers defaults to None."""
        if name in self.extra_defaults:
            return _is_default(value, self.extra_defaults[name])
        return self.takes_kwargs and value is None

    def _adapt(self, x: torch.Tensor, grid: tuple[int, int] | None, mask: torch.Tensor | None) -> torch.Tensor:
        """The substitute applied in the site's layout; `mask` (B, N) marks real tokens of padded sequences."""
        plain = (self.contract.layout, self.contract.output, self.contract.stride, self.order) == ("tokens", "same", 1, "raster")
        if mask is not None and not (plain and self.contract.inline_input is None):
            raise ValueError(f"{self.path}: a padding mask is honoured on plain token sequences in raster order only")
        if self.contract.inline_input is not None:
            return self.block(x)
        if self.contract.output == "pooled":
            return self._mix(_as_tokens(x, self.contract.layout), grid or self.contract.grid).mean(1)
        if self.contract.layout == "channels_first":
            height, width = x.shape[2], x.shape[3]
            y = self._mix(x.flatten(2).transpose(1, 2), (height, width))
            return self._downsample(y.transpose(1, 2).unflatten(2, (height, width)))
        if self.contract.layout == "grouped_tokens":
            return self._mix(x.flatten(0, 1), grid).unflatten(0, (x.shape[0], x.shape[1]))
        if self.contract.layout == "channels_last":
            height, width = x.shape[1], x.shape[2]
            y = self._mix(x.flatten(1, 2), (height, width)).unflatten(1, (height, width))
            return self._downsample(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        y = self.substitute(x, mask=mask) if mask is not None else self._mix(x, grid)
        if self.contract.output == "class_token":
            return y[:, :1]
        if self.contract.stride > 1:
            assert grid is not None, "a strided token contract has a grid"
            return y.unflatten(1, grid)[:, :: self.contract.stride, :: self.contract.stride].flatten(1, 2)
        return y

    def _downsample(self, y: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> the site's output grid: its own pooling layer, else every stride-th row and column."""
        stride = self.contract.stride
        if stride == 1:
            return y
        return self.pool(y) if self.pool is not None else y[:, :, ::stride, ::stride]

    def current_substitute(self) -> nn.Module:
        """The substitute module, whether it sits here or inside a rewritten block."""
        return self.block.get_submodule(SUBSTITUTE) if self.contract.inline_input is not None else self.substitute

    def replace_substitute(self, module: nn.Module) -> None:
        """Replace the substitute (a replay rebuilding a pruned structure) wherever it sits."""
        if self.contract.inline_input is not None:
            self.block.add_module(SUBSTITUTE, module)
        else:
            self.substitute = module

    def _mix(self, tokens: torch.Tensor, grid: tuple[int, int] | None) -> torch.Tensor:
        return in_order(self.substitute, tokens, self.order, grid, self.contract.prefix)

    def extra_repr(self) -> str:
        return f"{self.path}: {self.contract.describe}, order={self.order}"


def real_tokens(mask: torch.Tensor, path: str) -> torch.Tensor:
    """(B, N) bool, True at real tokens, from the mask Hugging Face passes its attention.

    That mask is (B, N), nonzero at real tokens, or (B, 1, N, N) over queries and keys: bool (True
    attends) or additive float (0 attends, a large negative masks). Every query of a padding mask
    attends the same keys (a query that attends none aside); a causal or banded mask differs
    between queries, and a sequence substitute cannot honour it.

    Example:
        >>> real_tokens(torch.tensor([[0.0, float("-inf")]]).expand(1, 1, 2, 2), "self").tolist()
        [[True, False]]
    """
    if mask.dim() == 2:
        return mask != 0
    attends = (mask if mask.dtype == torch.bool else mask == 0).flatten(1, -2)  # (B, queries, keys)
    real = attends.any(1)  # (B, N)
    checkable = not (torch.jit.is_tracing() or mask.is_meta)
    if checkable and not ((attends == real[:, None]) | ~attends.any(-1, keepdim=True)).all():
        raise ValueError(f"{path}: attention_mask differs between queries (causal or banded); a sequence substitute honours padding only")
    return real


def _as_tokens(x: torch.Tensor, layout: str) -> torch.Tensor:
    """(B, N, C) from any input layout of a pooling site."""
    if layout == "channels_first":
        return x.flatten(2).transpose(1, 2)
    return x.flatten(1, 2) if layout == "channels_last" else x


def _is_default(value: object, default: object) -> bool:
    """`value` equals the forward's default; a 0-d tensor counts by its value.

    The ONNX exporter traces flags as 0-d tensors whose value cannot be read
    while tracing; the eager runs before the export have checked them, and the
    export's parity check compares the outputs.
    """
    if isinstance(value, torch.Tensor) and value.dim() == 0 and isinstance(default, (bool, int, float)):
        return torch.jit.is_tracing() or bool(value == default)
    return value is default or (not isinstance(value, torch.Tensor) and value == default)
