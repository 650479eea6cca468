"""Site contracts: how a replaced attention is called, and what it must return.

A substitute maps sequences, (B, N, C) -> (B, N, C). timm's attention modules
take other shapes and extra arguments; the contract, read off one traced call,
says how to get from one to the other, or why it cannot:

- layout: `tokens` (B, N, C), which also covers window attention, whose windows
  arrive as a batch of sequences; `grouped_tokens` (B, G, N, C), G groups of N
  tokens attended separately (NesT's blocks), read as B·G sequences;
  `channels_first` (B, C, H, W); `channels_last` (B, H, W, C). 2-D inputs
  become sequences of H·W tokens.
- output: `same` shape as the input, `class_token` for class-attention that
  updates only the class token, (B, 1, C) out of (B, 1 + N, C), or `pooled`
  for attention pooling that returns one vector per image, (B, C) out of
  (B, N, C) or a feature map (timm's `AttentionPoolLatent`, `AttentionPool2d`):
  the substitute's sequence is averaged, the recurrent counterpart of a learned
  query attending to every token. Orthogonal to it, `output_nones`: a site that
  returns a tuple of its output and Nones (Hugging Face attention returns
  `(output, None)` when it does not keep its weights) gets the same tuple back.
- grid and prefix: where a token sequence is a raster of an (h, w) grid after
  `prefix` non-spatial tokens (class, register); token orders other than raster
  need it.
- inline: a block that computes attention in its own forward (it adds its
  input back) has its attention cut out of its graph (`surgery.detect.regions`).
- argument roles: extra arguments the adapter knows. `grid` arguments (a
  feature-map size) give the grid at run time. `position` arguments (rotary
  embeddings, relative position bias) make attention order-aware; a recurrence
  is order-aware by construction, so they are accepted and not used. A window
  `mask` (shifted windows) stops attention between regions that the cyclic
  shift made adjacent; the substitute reads each window as one sequence and
  does not need it. `query` arguments are queries computed outside the module
  (GCViT's global queries); a substitute mixes the tokens it is given and has
  no queries. A `padding` mask (Hugging Face's `attention_mask`, which keeps
  attention off padded keys; timm's `attn_mask` outside windows, which a halting
  teacher sets on stopped tokens) becomes the substitute's (B, N) mask of real
  tokens (`far_modules.padding`), and a mask that differs between queries
  (causal) is refused at run time; a sequence of padded text has no 2-D grid.
  Any other argument must stay at its default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

from torch import nn

from surgery.detect.regions import InlineAttentionError, region_widths
from surgery.graph.calls import CallShapes

Layout = Literal["tokens", "grouped_tokens", "channels_first", "channels_last"]
Output = Literal["same", "class_token", "pooled"]
Role = Literal["grid", "position", "window_mask", "query", "padding"]

GRID_ARGUMENTS = frozenset({"feat_size", "size", "hw_shape", "hw_size", "shape"})
POSITION_ARGUMENTS = frozenset({"rope", "shared_rel_pos_bias", "rel_pos_bias", "pos_bias", "rel_pos", "shared_rel_pos", "rope_freqs", "rope_cos", "rope_sin"})
QUERY_ARGUMENTS = frozenset({"q_global"})
WINDOW_MASK_ARGUMENTS = frozenset({"mask", "attn_mask"})
PADDING_ARGUMENTS = frozenset({"attention_mask", "attn_mask"})


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
    out_dim: int | None = None
    """Output width when it differs from the input's (a block that widens the stream in its attention)."""
    output_nones: int = 0
    """The site returns a tuple: its output, then this many Nones (Hugging Face attention's absent weights)."""
    inline_input: tuple[int, ...] | None = None
    """Set for a block that computes attention in its own forward: the input shape its graph is traced with
    (`surgery.detect.regions` cuts the attention out of it)."""
    stride: int = 1
    """Downsampling of the token grid by the site (strided attention): the substitute's output is pooled
    by the site's own `pool` layer when it has one, else taken every `stride`-th row and column, as such
    sites do to their queries."""

    @property
    def describe(self) -> str:
        grid = f", grid {self.grid[0]}x{self.grid[1]}" if self.grid else ""
        prefix = f", {self.prefix} prefix token{'s' * (self.prefix != 1)}" if self.prefix else ""
        output = {"class_token": ", class token out", "pooled": ", pooled out"}.get(self.output, "")
        widened = f", out width {self.out_dim}" if self.out_dim else ""
        strided = f", stride {self.stride}" if self.stride > 1 else ""
        inline = ", attention inline in the block" if self.inline_input else ""
        nones = f", returns (output{', None' * self.output_nones})" if self.output_nones else ""
        return f"{self.layout}{grid}{prefix}{output}{widened}{strided}{inline}{nones}"


def read_contract(model: nn.Module, path: str, call: CallShapes, argument_names: list[str]) -> SiteContract:
    """The contract of the module at `path`, from the shapes of one `call` and its activation products.

    Raises:
        ContractError: the call cannot be adapted (names the reason).
    """
    module = model.get_submodule(path)
    x, out = call.input, call.output
    if x is None:
        raise ContractError("its first argument is not a tensor")
    if out is None:
        raise ContractError("it returns more than one tensor")
    roles = _roles(module, argument_names)
    if call.adds_input:
        contract = _inline_contract(model, module, x, out, roles)
    elif len(x) == 3:
        contract = _token_contract(model, module, x, out, roles)
    elif len(x) == 4:
        contract = _spatial_contract(module, x, out, call.operands, roles)
    else:
        raise ContractError(f"its input has {len(x)} dimensions; adapters take (B, N, C), (B, G, N, C), (B, C, H, W) or (B, H, W, C)")
    return replace(contract, output_nones=call.output_nones) if call.output_nones else contract


def _inline_contract(model: nn.Module, module: nn.Module, x: tuple[int, ...], out: tuple[int, ...], roles: dict[str, Role]) -> SiteContract:
    """A block that computes attention in its own forward (it adds its input back): its graph is rewritten."""
    if len(x) != 3 or out != x:
        raise ContractError(f"it computes attention inline in a block mapping {x} to {out}; only (B, N, C) blocks are rewritten")
    try:
        width, out_width = region_widths(module, x)
    except InlineAttentionError as error:
        raise ContractError(f"it computes attention inline in a block, and {error}") from error
    grid, prefix = _token_grid(model, module, x[1], roles)
    return SiteContract("tokens", "same", grid, prefix, roles, out_width if out_width != width else None, inline_input=x)


def _roles(module: nn.Module, names: list[str]) -> dict[str, Role]:
    roles: dict[str, Role] = {}
    for name in names:
        if name in GRID_ARGUMENTS:
            roles[name] = "grid"
        elif name in POSITION_ARGUMENTS:
            roles[name] = "position"
        elif name in QUERY_ARGUMENTS:
            roles[name] = "query"
        elif name in WINDOW_MASK_ARGUMENTS and _window(module) is not None:
            roles[name] = "window_mask"
        elif name in PADDING_ARGUMENTS:
            roles[name] = "padding"
    return roles


def _token_contract(model: nn.Module, module: nn.Module, x: tuple[int, ...], out: tuple[int, ...], roles: dict[str, Role]) -> SiteContract:
    tokens, width = x[1], x[2]
    grid, prefix = _token_grid(model, module, tokens, roles)
    if len(out) == 2 and out[0] == x[0]:
        return SiteContract("tokens", "pooled", grid, prefix, roles, _changed(width, out[1]))
    if len(out) != 3 or out[0] != x[0]:
        raise ContractError(f"its output {out} is not a batch of token sequences like its input {x}, nor one vector per image")
    if out[1] == 1 and tokens > 1:
        return SiteContract("tokens", "class_token", grid, prefix, roles, _changed(width, out[2]))
    if out[1] == tokens:
        return SiteContract("tokens", "same", grid, prefix, roles, _changed(width, out[2]))
    stride = getattr(module, "stride", None)
    if not (grid and not prefix and isinstance(stride, int) and stride > 1 and math.prod(_strided(grid, stride)) == out[1]):
        raise ContractError(
            f"it changes the sequence length from {tokens} to {out[1]} (pooling attention) and does not declare a stride over a "
            "raster token grid, so which tokens survive is unknown"
        )
    return SiteContract("tokens", "same", grid, prefix, roles, _changed(width, out[2]), stride=stride)


def _spatial_contract(
    module: nn.Module, x: tuple[int, ...], out: tuple[int, ...], operands: tuple[tuple[int, ...], ...], roles: dict[str, Role]
) -> SiteContract:
    """(B, C, H, W), (B, H, W, C) or (B, G, N, C): the channel axis from the module's first projection, else
    from the products' token counts; the token axes must come out as they went in."""
    _, a, b, c = x
    lengths = {size for shape in operands for size in shape[-2:]}
    axis = _channel_axis(module, a, c) or ("first" if b * c in lengths and a * b not in lengths else "last")
    if len(out) == 2 and out[0] == x[0]:
        width = a if axis == "first" else c
        layout: Layout = "channels_first" if axis == "first" else "channels_last"
        return SiteContract(layout, "pooled", (b, c) if axis == "first" else (a, b), roles=roles, out_dim=_changed(width, out[1]))
    grid_in, grid_out = ((b, c), tuple(out[2:])) if axis == "first" else ((a, b), tuple(out[1:3]))
    if out[0] != x[0] or len(out) != 4:
        raise ContractError(f"its output {out} is not a batch of feature maps like its input {x}")
    stride = _stride(grid_in, grid_out)
    if stride is None:
        raise ContractError(f"its output grid {grid_out} is no integer stride of its input grid {grid_in}")
    if axis == "first":
        return SiteContract("channels_first", grid=(b, c), roles=roles, out_dim=_changed(a, out[1]), stride=stride)
    if stride == 1 and b in lengths and a * b not in lengths:
        side = math.isqrt(b)
        return SiteContract("grouped_tokens", grid=(side, side) if side * side == b else None, roles=roles, out_dim=_changed(c, out[3]))
    return SiteContract("channels_last", grid=(a, b), roles=roles, out_dim=_changed(c, out[3]), stride=stride)


def _stride(grid_in: tuple[int, int], grid_out: tuple[int, ...]) -> int | None:
    """s when the output grid is the input grid taken every s-th row and column."""
    return next((stride for stride in range(1, max(grid_in) + 1) if _strided(grid_in, stride) == grid_out), None)


def _strided(grid: tuple[int, int], stride: int) -> tuple[int, int]:
    """The grid every `stride`-th row and column leave (ceil division, as strided ops do)."""
    return -(-grid[0] // stride), -(-grid[1] // stride)


def _changed(width: int, out_width: int) -> int | None:
    return out_width if out_width != width else None


def _channel_axis(module: nn.Module, first: int, last: int) -> Literal["first", "last"] | None:
    """Where the channels are, from the first projection inside `module`: a Conv2d reads them on axis 1, a Linear on
    the axis whose size it takes (last, or axis 1 of a map the module flattens to tokens itself)."""
    for child in list(module.modules())[1:]:
        if isinstance(child, nn.Conv2d) and child.in_channels == first != last:
            return "first"
        if isinstance(child, nn.Linear) and child.in_features == last != first:
            return "last"
        if isinstance(child, nn.Linear) and child.in_features == first != last:  # it flattens the map to tokens itself
            return "first"
        if isinstance(child, (nn.Conv2d, nn.Linear)):
            return None
    return None


def _token_grid(model: nn.Module, module: nn.Module, tokens: int, roles: dict[str, Role]) -> tuple[tuple[int, int] | None, int]:
    """(grid, prefix) of a token sequence: the module's window, else the model's patch grid, else a square."""
    window = _window(module)
    if window is not None and window[0] * window[1] == tokens:
        return window, 0
    if "grid" in roles.values() or roles.get("attention_mask") == "padding":
        return None, 0  # the grid arrives with every call, or the tokens are text (Hugging Face's mask)
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
