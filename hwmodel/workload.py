"""The workload: a model's ops with their shapes, in graph order, and the dependencies between them.

Pure data (no torch): `hwmodel.extract` builds it from an fx graph, the pricing
modules read it. Each op knows its element counts and bytes at the traced dtype;
`deps` index earlier ops whose outputs it consumes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Op:
    """Fields every op carries: where it came from and what it waits for."""

    name: str = ""
    path: str = ""
    deps: tuple[int, ...] = ()
    itemsize: int = 4

    @property
    def in_elements(self) -> int:
        return 0

    @property
    def out_elements(self) -> int:
        return 0

    @property
    def weight_elements(self) -> int:
        return 0

    @property
    def macs(self) -> int:
        return 0

    @property
    def bytes(self) -> int:
        """Activations read and written plus weights, at the traced dtype."""
        return (self.in_elements + self.out_elements + self.weight_elements) * self.itemsize


@dataclass(frozen=True, kw_only=True)
class Gemm(Op):
    """`vectors` inputs of width `rows` times a stationary (rows x cols) weight; `groups` such weights."""

    rows: int
    cols: int
    vectors: int
    groups: int = 1

    @property
    def in_elements(self) -> int:
        return self.rows * self.vectors * self.groups

    @property
    def out_elements(self) -> int:
        return self.cols * self.vectors * self.groups

    @property
    def weight_elements(self) -> int:
        return self.rows * self.cols * self.groups

    @property
    def macs(self) -> int:
        return self.rows * self.cols * self.vectors * self.groups


# Gates per cell kind: LSTM i, f, g, o; GRU r, z, n; plain RNN one.
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


@dataclass(frozen=True, kw_only=True)
class Recurrence(Op):
    """One direction of one recurrent layer: `steps` dependent steps of W_ih x_t + W_hh h_(t-1)."""

    cell: str = "lstm"
    input_size: int
    hidden_size: int
    steps: int
    batch: int = 1

    @property
    def gates(self) -> int:
        return GATES[self.cell]

    @property
    def in_elements(self) -> int:
        return self.steps * self.batch * self.input_size

    @property
    def out_elements(self) -> int:
        return self.steps * self.batch * self.hidden_size

    @property
    def weight_elements(self) -> int:
        return self.gates * self.hidden_size * (self.input_size + self.hidden_size)

    @property
    def macs(self) -> int:
        return self.steps * self.batch * self.weight_elements


@dataclass(frozen=True, kw_only=True)
class Product(Op):
    """An activation x activation product: `batch` independent (m x k) @ (k x n) products."""

    m: int
    k: int
    n: int
    batch: int = 1

    @property
    def in_elements(self) -> int:
        return self.batch * self.k * (self.m + self.n)

    @property
    def out_elements(self) -> int:
        return self.batch * self.m * self.n

    @property
    def macs(self) -> int:
        return self.batch * self.m * self.k * self.n


@dataclass(frozen=True, kw_only=True)
class Nonlinear(Op):
    """A nonlinearity run on digital units: softmax, gelu, sigmoid, tanh, layernorm, ..."""

    fn: str
    elements: int

    @property
    def in_elements(self) -> int:
        return self.elements

    @property
    def out_elements(self) -> int:
        return self.elements


@dataclass(frozen=True, kw_only=True)
class Elementwise(Op):
    """An elementwise op (add, mul, div, reduce) over `elements` outputs reading `operands` tensors."""

    fn: str
    elements: int
    operands: int = 2

    @property
    def in_elements(self) -> int:
        return self.elements * self.operands

    @property
    def out_elements(self) -> int:
        return self.elements


@dataclass(frozen=True)
class Workload:
    """A model's ops in graph order, plus the calls the extractor met but could not price."""

    ops: tuple[Op, ...]
    skipped: tuple[str, ...] = ()

    @property
    def macs(self) -> int:
        return sum(op.macs for op in self.ops)

    def of_kind(self, kind: type[Op]) -> list[Op]:
        return [op for op in self.ops if isinstance(op, kind)]

    def blocks(self, paths: Sequence[str] | None = None) -> dict[str, list[int]]:
        """Op indices per block, in first-seen order; see `block_of` for the grouping rule."""
        groups: dict[str, list[int]] = {}
        for index, op in enumerate(self.ops):
            groups.setdefault(block_of(op.path, paths), []).append(index)
        return groups


_NUMBERED_BLOCK = re.compile(r"^(.*?\bblocks\.\d+)(\.|$)")


def block_of(path: str, paths: Sequence[str] | None = None) -> str:
    """The block an op at module `path` belongs to.

    With `paths`, the longest one that is `path` or a dotted prefix of it wins;
    without, the prefix up to `blocks.N`. Ops outside any block fall back to
    their top-level module name, or "(root)" when they ran outside all modules.

    Example:
        >>> block_of("blocks.3.attn.qkv"), block_of("head"), block_of("stages.1.mlp", ["stages.1"])
        ('blocks.3', 'head', 'stages.1')
    """
    if paths is not None:
        matches = [p for p in paths if path == p or path.startswith(p + ".")]
        if matches:
            return max(matches, key=len)
    elif (match := _NUMBERED_BLOCK.match(path)) is not None:
        return match.group(1)
    return path.split(".")[0] if path else "(root)"
