"""Site contracts: how a replaced attention is called, and what it must return.

A substitute maps sequences, (B, N, C) -> (B, N, C). timm's attention modules
take other shapes and extra arguments; the contract, read off one traced call,
says how to get from one to the other, or why it cannot:

- layout: `tokens` (B, N, C), which also covers window attention, whose windows
  arrive as a batch of sequences; `channels_first` (B, C, H, W); `channels_last`
  (B, H, W, C). 2-D inputs become sequences of H·W tokens.
- output: `same` shape as the input, or `class_token` for class-attention that
  updates only the class token, (B, 1, C) out of (B, 1 + N, C).
- grid and prefix: where a token sequence is a raster of an (h, w) grid after
  `prefix` non-spatial tokens (class, register); token orders other than raster
  need it.
- argument roles: extra arguments the adapter knows. `grid` arguments (a
  feature-map size) give the grid at run time. `position` arguments (rotary
  embeddings, relative position bias) make attention order-aware; a recurrence
  is order-aware by construction, so they are accepted and not used. A window
  `mask` (shifted windows) stops attention between regions that the cyclic
  shift made adjacent; the substitute reads each window as one sequence and
  does not need it. Any other argument must stay at its default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from torch import fx, nn

from surgery.tracing import shape_of

Layout = Literal["tokens", "channels_first", "channels_last"]
Output = Literal["same", "class_token"]
Role = Literal["grid", "position", "window_mask"]

GRID_ARGUMENTS = frozenset({"feat_size", "size", "hw_shape", "hw_size", "shape"})
POSITION_ARGUMENTS = frozenset({"rope", "shared_rel_pos_bias", "rel_pos_bias", "pos_bias", "rel_pos", "rope_freqs"})
WINDOW_MASK_ARGUMENTS = frozenset({"mask", "attn_mask"})


class ContractError(ValueError):
    """The site's call cannot be mapped onto a sequence substitute; the message says why."""


@dataclass(frozen=True)
class SiteContract:
    """How to adapt one site: input layout, output kind, token grid and the roles of extra arguments."""

    layout: Layout
    output: Output = "same"
    grid: tuple[int, int] | None = None
    prefix: int = 0
    roles: dict[str, Role] = field(default_factory=dict, hash=False)

    @property
    def describe(self) -> str:
        grid = f", grid {self.grid[0]}x{self.grid[1]}" if self.grid else ""
        prefix = f", {self.prefix} prefix token{'s' * (self.prefix != 1)}" if self.prefix else ""
        output = ", class token out" if self.output == "class_token" else ""
        return f"{self.layout}{grid}{prefix}{output}"


def read_contract(model: nn.Module, path: str, call: fx.Node, products: list[fx.Node], argument_names: list[str]) -> SiteContract:
    """The contract of the module at `path`, from its traced `call` and its activation products.

    Raises:
        ContractError: the call cannot be adapted (names the reason).
    """
    module = model.get_submodule(path)
    x = shape_of(call.args[0]) if call.args and isinstance(call.args[0], fx.Node) else None
    out = shape_of(call)
    if x is None:
        raise ContractError("its first argument is not a tensor")
    if out is None:
        raise ContractError("it returns more than one tensor")
    roles = _roles(module, argument_names)
    if len(x) == 3:
        return _token_contract(model, module, x, out, roles)
    if len(x) == 4:
        return _spatial_contract(x, out, products, roles)
    raise ContractError(f"its input has {len(x)} dimensions; adapters take (B, N, C), (B, C, H, W) or (B, H, W, C)")


def _roles(module: nn.Module, names: list[str]) -> dict[str, Role]:
    roles: dict[str, Role] = {}
    for name in names:
        if name in GRID_ARGUMENTS:
            roles[name] = "grid"
        elif name in POSITION_ARGUMENTS:
            roles[name] = "position"
        elif name in WINDOW_MASK_ARGUMENTS and _window(module) is not None:
            roles[name] = "window_mask"
    return roles


def _token_contract(model: nn.Module, module: nn.Module, x: tuple[int, ...], out: tuple[int, ...], roles: dict[str, Role]) -> SiteContract:
    tokens, width = x[1], x[2]
    if out[-1] != width:
        raise ContractError(f"it changes the width from {width} to {out[-1]}")
    if out[1] == 1 and tokens > 1:
        return SiteContract("tokens", "class_token", *_token_grid(model, module, tokens, roles), roles=roles)
    if out[1] != tokens:
        raise ContractError(f"it changes the sequence length from {tokens} to {out[1]} (pooling attention); no adapter reuses the pooling yet")
    return SiteContract("tokens", "same", *_token_grid(model, module, tokens, roles), roles=roles)


def _spatial_contract(x: tuple[int, ...], out: tuple[int, ...], products: list[fx.Node], roles: dict[str, Role]) -> SiteContract:
    if out != x:
        raise ContractError(f"its output {out} differs from its input {x} (strided or pooled attention); no adapter for that yet")
    lengths = {size for node in products for operand in node.args if isinstance(operand, fx.Node) for size in (shape_of(operand) or ())[-2:]}
    _, a, b, c = x
    first, last = b * c in lengths, a * b in lengths
    if first and not last:
        return SiteContract("channels_first", grid=(b, c), roles=roles)
    if last and not first:
        return SiteContract("channels_last", grid=(a, b), roles=roles)
    why = "both" if first else "neither"
    raise ContractError(f"cannot tell channels-first from channels-last in {x}: {why} H·W match its products' token counts")


def _token_grid(model: nn.Module, module: nn.Module, tokens: int, roles: dict[str, Role]) -> tuple[tuple[int, int] | None, int]:
    """(grid, prefix) of a token sequence: the module's window, else the model's patch grid, else a square."""
    window = _window(module)
    if window is not None and window[0] * window[1] == tokens:
        return window, 0
    if "grid" in roles.values():
        return None, 0  # the grid arrives with every call
    prefix = int(getattr(model, "num_prefix_tokens", 0) or 0)
    grid = getattr(getattr(model, "patch_embed", None), "grid_size", None)
    if isinstance(grid, (tuple, list)) and len(grid) == 2 and prefix + grid[0] * grid[1] == tokens:
        return (int(grid[0]), int(grid[1])), prefix
    for candidate in dict.fromkeys((prefix, 0, 1)):
        side = math.isqrt(tokens - candidate) if tokens > candidate else 0
        if side and side * side == tokens - candidate:
            return (side, side), candidate
    return None, 0


def _window(module: nn.Module) -> tuple[int, int] | None:
    size = getattr(module, "window_size", None)
    if isinstance(size, int):
        return size, size
    if isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(s, int) for s in size):
        return int(size[0]), int(size[1])
    return None
