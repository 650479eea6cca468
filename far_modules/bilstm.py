"""The FAR substitute: a multi-head bidirectional LSTM (paper §3.2).

x (B, N, D) -> LayerNorm -> Linear(D, H*d) -> H heads of d -> per head a forward
and a backward LSTM -> concat (B, N, sum of hidden sizes) -> Linear(., D).
Each head and direction owns its own `nn.LSTM`, so pruning can give each a
different hidden size; the module is `Prunable` (see `far_modules.prune`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from functools import partial
from typing import Any, Literal

import torch
from torch import nn

from far_modules.padding import readings
from far_modules.prune import Direction, UnitGroup, UnitKey, check_keep
from far_modules.spec import CostKind, SiteSpec

HiddenSizes = tuple[tuple[int, int], ...]


class MultiHeadBiLSTM(nn.Module):
    """Drop-in replacement for a (B, N, D) -> (B, N, D) attention module.

    Args:
        dim: token width D.
        hidden_sizes: (forward, backward) hidden size per head.
        head_dim: input width d of each head's LSTMs.
        bias: biases in the projections and LSTMs.
        out_dim: output width, when the replaced module widens the stream (default `dim`).
    """

    cell: type[nn.RNNBase] = nn.LSTM
    """The recurrence of every head and direction (`MultiHeadBiGRU` swaps in `nn.GRU`)."""
    cost_kind: CostKind = "recurrent"

    def __init__(self, dim: int, hidden_sizes: HiddenSizes, head_dim: int, bias: bool = True, out_dim: int | None = None) -> None:
        super().__init__()
        self.dim, self.head_dim, self.out_dim = dim, head_dim, out_dim or dim
        self.hidden_sizes = tuple((int(f), int(b)) for f, b in hidden_sizes)
        self.norm = nn.LayerNorm(dim)
        self.in_proj = nn.Linear(dim, self.num_heads * head_dim, bias=bias)
        self.forward_rnns = nn.ModuleList(self.cell(head_dim, f, bias=bias, batch_first=True) for f, _ in self.hidden_sizes)
        self.backward_rnns = nn.ModuleList(self.cell(head_dim, b, bias=bias, batch_first=True) for _, b in self.hidden_sizes)
        self.out_proj = nn.Linear(sum(f + b for f, b in self.hidden_sizes), self.out_dim, bias=bias)

    @property
    def num_heads(self) -> int:
        return len(self.hidden_sizes)

    @classmethod
    def from_site(
        cls,
        spec: SiteSpec,
        *,
        source: nn.Module | None = None,
        heads: int | Literal["auto"] = "auto",
        hidden_size: int | Literal["auto"] = "auto",
        init: Literal["random", "attention"] = "random",
        bias: bool = True,
    ) -> MultiHeadBiLSTM:
        """Build the paper's layout from a site: heads and hidden size default to the attention's.

        `heads="auto"` takes the site's heads, or the largest count below them that divides its width.

        `init="attention"` starts the input projection from the attention's value
        projection and the output projection from its `proj`, as the official code does.
        """
        _check_options(heads, hidden_size, init, bias)
        num_heads = _auto_heads(spec) if heads == "auto" else heads
        if spec.dim % num_heads:
            raise ValueError(f"heads={num_heads} does not divide the site's width {spec.dim}")
        head_dim = spec.dim // num_heads
        hidden = head_dim if hidden_size == "auto" else hidden_size
        module = cls(spec.dim, ((hidden, hidden),) * num_heads, head_dim, bias=bias, out_dim=spec.out_dim)
        if init == "attention":
            copy_attention_projections(module, source)
        return module

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, N, D) -> (B, N, D_out); `mask` (B, N) bool marks the real tokens of padded sequences (`far_modules.padding`)."""
        heads = self.in_proj(self.norm(x)).split(self.head_dim, dim=-1)  # H x (B, N, d)
        forward, backward = readings(x, mask)
        outputs = []
        for h in range(self.num_heads):  # indexed, not zipped: torch.fx can index a split, not iterate it
            outputs.append(forward.write(self.forward_rnns[h](forward.read(heads[h]))[0]))  # (B, N, h_fwd)
            outputs.append(backward.write(self.backward_rnns[h](backward.read(heads[h]))[0]))  # (B, N, h_bwd)
        return self.out_proj(torch.cat(outputs, dim=-1))  # (B, N, D)

    def config(self) -> dict[str, Any]:
        """JSON-able constructor arguments: what a replay needs to rebuild this (possibly shrunk) shape."""
        sizes = [[f, b] for f, b in self.hidden_sizes]
        config = {"dim": self.dim, "hidden_sizes": sizes, "head_dim": self.head_dim, "bias": self.in_proj.bias is not None}
        return config if self.out_dim == self.dim else {**config, "out_dim": self.out_dim}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> MultiHeadBiLSTM:
        return cls(**config)

    def unit_groups(self) -> list[UnitGroup]:
        """One group per head and direction, in `out_proj` column order."""
        groups, offset = [], 0
        for head, direction, lstm in self._lstms():
            columns = slice(offset, offset + lstm.hidden_size)
            squares = partial(_unit_squares, lstm, self.out_proj, columns)
            groups.append(UnitGroup(head, direction, lstm.hidden_size, squares))
            offset += lstm.hidden_size
        return groups

    @torch.no_grad()
    def masked(self, keep: Mapping[UnitKey, torch.Tensor]) -> MultiHeadBiLSTM:
        """A copy with the removed units' weight groups zeroed: the oracle `shrink` must match."""
        keep = check_keep(self.unit_groups(), keep, self.out_proj.weight.device)
        module = copy.deepcopy(self)
        for head, direction, lstm in module._lstms():
            _zero_units(lstm, ~keep[(head, direction)])
        module.out_proj.weight[:, ~self._kept_columns(keep)] = 0
        return module

    @torch.no_grad()
    def shrink(self, keep: Mapping[UnitKey, torch.Tensor]) -> MultiHeadBiLSTM:
        """A new module holding only the kept units; `norm`, `in_proj` and `out_proj.bias` are copied whole."""
        weight = self.out_proj.weight
        keep = check_keep(self.unit_groups(), keep, weight.device)
        sizes = [[int(keep[(h, "forward")].sum()), int(keep[(h, "backward")].sum())] for h in range(self.num_heads)]
        small = self.from_config({**self.config(), "hidden_sizes": sizes}).to(weight.device, weight.dtype)
        small.norm.load_state_dict(self.norm.state_dict())
        small.in_proj.load_state_dict(self.in_proj.state_dict())
        for (head, direction, source), (_, _, target) in zip(self._lstms(), small._lstms()):
            _copy_units(source, target, keep[(head, direction)])
        small.out_proj.weight.copy_(weight[:, self._kept_columns(keep)])
        if self.out_proj.bias is not None:
            small.out_proj.bias.copy_(self.out_proj.bias)
        return small

    def _lstms(self) -> Iterator[tuple[int, Direction, nn.LSTM]]:
        """(head, direction, LSTM) in the order their outputs are concatenated."""
        for head, (fwd, bwd) in enumerate(zip(self.forward_rnns, self.backward_rnns)):
            yield head, "forward", fwd
            yield head, "backward", bwd

    def _kept_columns(self, keep: Mapping[UnitKey, torch.Tensor]) -> torch.Tensor:
        """Boolean mask over `out_proj` input columns, shape (sum of hidden sizes,)."""
        return torch.cat([keep[(head, direction)] for head, direction, _ in self._lstms()])


def _auto_heads(spec: SiteSpec) -> int:
    """The site's heads when they divide its width, else the largest count below them that does."""
    return max(h for h in range(1, max(spec.num_heads, 1) + 1) if spec.dim % h == 0)


def _check_options(heads: object, hidden_size: object, init: object, bias: object) -> None:
    """Recipe params arrive as plain YAML values; refuse what the annotations do not allow."""
    for name, value in (("heads", heads), ("hidden_size", hidden_size)):
        if value != "auto" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be 'auto' or a positive integer, got {value!r}")
    if init not in ("random", "attention"):
        raise ValueError(f"init must be 'random' or 'attention', got {init!r}")
    if not isinstance(bias, bool):
        raise ValueError(f"bias must be true or false, got {bias!r}")


def _gates(rnn: nn.RNNBase) -> int:
    return rnn.weight_ih_l0.shape[0] // rnn.hidden_size


def _unit_squares(lstm: nn.LSTM, out_proj: nn.Linear, columns: slice) -> torch.Tensor:
    """Squared L2 norm of each unit's composite row (eq. 6), shape (h,).

    The row concatenates the unit's 4 gate rows of W_ih and W_hh (PyTorch gate
    order i, f, g, o: rows g*h + j), its W_hh column (its pull on every gate) and
    its `out_proj` column. As in the paper's concatenation, the unit's own
    recurrent weights W_hh[g*h + j, j] sit in both its rows and its column.
    Biases are not weights of the group.
    """
    h = lstm.hidden_size
    w_ih = lstm.weight_ih_l0.view(-1, h, lstm.input_size).square()  # (gate, unit, d): 4 gates for an LSTM, 3 for a GRU
    w_hh = lstm.weight_hh_l0.view(-1, h, h).square()  # (gate, unit, source unit)
    out = out_proj.weight[:, columns].square()  # (D, unit)
    return w_ih.sum((0, 2)) + w_hh.sum((0, 2)) + w_hh.sum((0, 1)) + out.sum(0)


def _zero_units(lstm: nn.LSTM, removed: torch.Tensor) -> None:
    """Zero the removed units' gate rows and W_hh columns in place; biases stay."""
    rows = removed.repeat(_gates(lstm))  # (gates·h,) gate-major, like the weights
    lstm.weight_ih_l0[rows] = 0
    lstm.weight_hh_l0[rows] = 0
    lstm.weight_hh_l0[:, removed] = 0


def _copy_units(source: nn.LSTM, target: nn.LSTM, keep: torch.Tensor) -> None:
    """Copy the kept units' gate rows, recurrent columns and gate biases into a smaller LSTM."""
    rows = keep.repeat(_gates(source))  # (gates·h,) gate-major, like the weights
    target.weight_ih_l0.copy_(source.weight_ih_l0[rows])
    target.weight_hh_l0.copy_(source.weight_hh_l0[rows][:, keep])
    if source.bias:
        target.bias_ih_l0.copy_(source.bias_ih_l0[rows])
        target.bias_hh_l0.copy_(source.bias_hh_l0[rows])


@torch.no_grad()
def copy_attention_projections(module: MultiHeadBiLSTM, source: nn.Module | None) -> None:
    """Seed `in_proj` from the attention's value projection and `out_proj` from its `proj`.

    Head h of the attention writes columns [h*d, (h+1)*d) of `proj`'s input; both
    LSTM directions of head h get those columns, halved, so that at the start the
    sum of the two directions plays the role of the attention's head output. An
    attention without an output projection of its own returns the heads'
    concatenation, which its block projects (BERT's `attention.output.dense`):
    there `proj` is the identity.
    """
    value, proj = _value_projection(source), _output_projection(source)
    d, heads = module.head_dim, module.num_heads
    if value is None or proj is None:
        raise ValueError(
            f"init='attention' needs a source with a qkv, kv or value Linear ({', '.join(_VALUE_NAMES)}) and an output projection "
            f"({', '.join(_PROJ_NAMES)}) or none, got {type(source).__name__}"
        )
    weight, bias = proj
    out_features, in_features = weight.shape if weight is not None else (heads * d, heads * d)
    if value[0].shape != module.in_proj.weight.shape or in_features != heads * d or out_features != module.out_dim:
        raise ValueError(
            f"init='attention' needs matching shapes: value projection {tuple(value[0].shape)} vs in_proj "
            f"{tuple(module.in_proj.weight.shape)}, proj {(out_features, in_features)} vs {heads} heads of {d}"
        )
    if any(f != d or b != d for f, b in module.hidden_sizes):
        raise ValueError("init='attention' needs hidden_size equal to the head width")
    if module.in_proj.weight.is_meta or value[0].is_meta:
        return  # planning on the meta device checks shapes only
    module.in_proj.weight.copy_(value[0])
    _copy_bias(module.in_proj, value[1])
    weight = weight if weight is not None else torch.eye(heads * d, dtype=value[0].dtype, device=value[0].device)
    per_head = weight.view(module.out_dim, heads, 1, d) / 2  # (D_out, H, 1, d)
    module.out_proj.weight.copy_(per_head.expand(-1, -1, 2, -1).reshape(module.out_dim, heads * 2 * d))
    _copy_bias(module.out_proj, bias)


_VALUE_NAMES = ("v", "value", "v_proj", "v_lin")
"""A separate value projection: timm's `v`, BERT's `value`, BART/CLIP's `v_proj`, DistilBERT's `v_lin`."""
_QKV_NAMES = ("qkv", "kv", "q", "k", "query", "key", "q_proj", "k_proj", "q_lin", "k_lin", *_VALUE_NAMES)
_PROJ_NAMES = ("proj", "out_proj", "o_proj", "out_lin")
"""The attention's own output projection: timm's `proj`, BART/CLIP's `out_proj`, Llama-style `o_proj`, DistilBERT's `out_lin`."""


def _value_projection(source: nn.Module | None) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """(weight, bias) of the value projection, from a fused `qkv`, a fused `kv` (PVT, Twins) or a separate one (`_VALUE_NAMES`)."""
    qkv, kv = getattr(source, "qkv", None), getattr(source, "kv", None)
    if isinstance(qkv, nn.Linear) and qkv.out_features % 3 == 0:
        width = qkv.out_features // 3
        bias = qkv.bias[2 * width :] if qkv.bias is not None else _qkv_v_bias(source, width)
        return qkv.weight[2 * width :], bias
    if isinstance(kv, nn.Linear) and kv.out_features % 2 == 0:
        width = kv.out_features // 2
        return kv.weight[width:], kv.bias[width:] if kv.bias is not None else None
    v = next((m for m in (getattr(source, name, None) for name in _VALUE_NAMES) if isinstance(m, nn.Linear)), None)
    return (v.weight, v.bias) if v is not None else None


def _output_projection(source: nn.Module | None) -> tuple[torch.Tensor | None, torch.Tensor | None] | None:
    """(weight, bias) of the attention's `proj` (`out_proj`, ...); (None, None), the identity, when its only Linears are
    its q/k/v projections; None when it projects its output some other way."""
    named = [getattr(source, name, None) for name in _PROJ_NAMES]
    proj = next((module for module in named if isinstance(module, nn.Linear)), None)
    if proj is not None:
        return proj.weight, proj.bias
    if source is None or any(module is not None for module in named):
        return None
    others = [name for name, child in source.named_modules() if isinstance(child, nn.Linear) and name not in _QKV_NAMES]
    return None if others else (None, None)


def _qkv_v_bias(source: nn.Module, width: int) -> torch.Tensor | None:
    """timm's BEiT-style attention keeps q and v biases apart from a bias-free qkv."""
    v_bias = getattr(source, "v_bias", None)
    return v_bias if isinstance(v_bias, torch.Tensor) and v_bias.numel() == width else None


def _copy_bias(target: nn.Linear, bias: torch.Tensor | None) -> None:
    if target.bias is None:
        return
    if bias is None:
        target.bias.zero_()
    else:
        target.bias.copy_(bias)


class MultiHeadBiGRU(MultiHeadBiLSTM):
    """The same layout with a GRU per head and direction: three gates instead of four, no cell state.

    Pruning groups follow the same rule (a unit's gate rows, its W_hh column and
    its output-projection column), over three gates.
    """

    cell = nn.GRU
