"""Which function and method calls are ops, and their shapes: shared by the fx walk and the leaf recorder.

Calls are named as torch names them (`matmul`, `__add__`, `softmax`, ...), so
fx's `call_function` / `call_method` targets and a `TorchFunctionMode`'s funcs
classify alike. Tensor arguments arrive as `Operand`s; a call none of whose
operands is an activation works on constants only and is free (foldable).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hwmodel.workload import Elementwise, Gemm, Nonlinear, Op, Product

_MATMULS = {"matmul", "__matmul__", "bmm", "mm", "baddbmm", "addmm"}
_NONLINEAR = {
    "softmax": "softmax",
    "log_softmax": "softmax",
    "gelu": "gelu",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "silu": "silu",
    "relu": "relu",
    "relu_": "relu",
    "layer_norm": "layernorm",
    "group_norm": "layernorm",
    "rms_norm": "layernorm",
    "exp": "exp",
    "sqrt": "sqrt",
    "rsqrt": "sqrt",
    "erf": "tanh",  # priced like tanh (a polynomial of the same order)
    "reciprocal": "reciprocal",
    "batch_norm": "affine",  # inference-time batch norm is a per-channel scale and shift
}
_ELEMENTWISE = {
    **dict.fromkeys(["add", "__add__", "__radd__", "__iadd__", "add_", "sub", "__sub__", "__rsub__", "rsub"], "add"),
    **dict.fromkeys(["mul", "__mul__", "__rmul__", "__imul__", "mul_", "pow", "__pow__"], "mul"),
    **dict.fromkeys(["div", "truediv", "__truediv__", "__rtruediv__", "div_"], "div"),
    **dict.fromkeys(["mean", "sum", "amax", "max", "maximum", "minimum", "clamp", "neg", "abs", "where"], "max"),
}
# Moving, viewing or describing data (an embedding lookup too) costs no arithmetic; traffic is charged by the ops around it.
FREE = frozenset(
    "reshape view permute transpose flatten unflatten contiguous split chunk unbind tensor_split getitem __getitem__ "
    "cat concat stack expand expand_as flip roll squeeze unsqueeze movedim narrow select index_select gather pad "
    "repeat to type_as float half bfloat16 clone detach dropout identity getattr size dim numel _assert "
    "eq ne lt gt le ge zeros_like ones_like new_zeros new_ones masked_fill t embedding".split()
)


@dataclass(frozen=True)
class Operand:
    """A tensor argument as classification sees it."""

    shape: tuple[int, ...]
    itemsize: int
    activation: bool


@dataclass(frozen=True)
class Draft:
    """An op of one call; it waits for the call's inputs and for the drafts of the same call in `after`."""

    op: Op
    after: tuple[int, ...] = ()


def operands(values: Any) -> Iterator[Operand]:
    """Every Operand in (nested lists / tuples / dicts of) arguments."""
    if isinstance(values, Operand):
        yield values
    elif isinstance(values, (list, tuple)):
        for value in values:
            yield from operands(value)
    elif isinstance(values, dict):
        yield from operands(list(values.values()))


def classify_call(name: str, args: tuple, kwargs: dict, out: Operand | None) -> list[Draft] | None:
    """The ops of one call: a list (empty when free), or None when the call is not known."""
    if out is None or name in FREE or not any(o.activation for o in operands((args, kwargs))):
        return []
    if name in _MATMULS:
        return _matmul(name, args, out)
    if name == "einsum":
        return _einsum(args, out)
    if name == "scaled_dot_product_attention":
        return _attention(args, kwargs, out)
    if name == "linear":
        return _linear(args[0], args[1] if len(args) > 1 else kwargs["weight"], out)
    if name in ("conv1d", "conv2d", "conv3d"):
        return _conv(args, kwargs, out)
    if name in _NONLINEAR:
        return [Draft(Nonlinear(fn=_NONLINEAR[name], elements=math.prod(out.shape), itemsize=out.itemsize))]
    if name in _ELEMENTWISE:
        return [_elementwise(_ELEMENTWISE[name], args, kwargs, out)]
    return None


def contract(a: Operand, b: Operand, batch: int, m: int, k: int, n: int, itemsize: int) -> Op | None:
    """(batch of) (m x k) @ (k x n): a Product of two activations, a Gemm when one side is constant."""
    if a.activation and b.activation:
        return Product(m=m, k=k, n=n, batch=batch, itemsize=itemsize)
    if a.activation:
        return Gemm(rows=k, cols=n, vectors=batch * m, itemsize=itemsize)
    if b.activation:  # constant on the left: W (m x k) applied to the n columns of b
        return Gemm(rows=k, cols=m, vectors=batch * n, itemsize=itemsize)
    return None


def _drafts(*ops: Op | None) -> list[Draft]:
    """Chained drafts: each waits for the previous one."""
    present = [op for op in ops if op is not None]
    return [Draft(op, (i - 1,) if i else ()) for i, op in enumerate(present)]


def _matmul(name: str, args: tuple, out: Operand) -> list[Draft]:
    a, b = (args[1], args[2]) if name in ("baddbmm", "addmm") else (args[0], args[1])
    k = a.shape[-1]
    m = a.shape[-2] if len(a.shape) > 1 else 1
    n = b.shape[-1] if len(b.shape) > 1 else 1
    batch = math.prod(out.shape) // (m * n)
    return _drafts(contract(a, b, batch, m, k, n, out.itemsize))


def _linear(x: Operand, weight: Operand, out: Operand) -> list[Draft]:
    """x (..., in) @ weight (out, in)^T."""
    out_features, in_features = weight.shape
    vectors = math.prod(x.shape[:-1])
    return _drafts(contract(x, weight, 1, vectors, in_features, out_features, out.itemsize))


def _conv(args: tuple, kwargs: dict, out: Operand) -> list[Draft] | None:
    """conv(input, weight (out, in / groups, *kernel), bias, stride, padding, dilation, groups) as im2col."""
    weight = args[1] if len(args) > 1 else kwargs["weight"]
    groups = args[6] if len(args) > 6 else kwargs.get("groups", 1)
    out_channels, rows = weight.shape[0], math.prod(weight.shape[1:])
    vectors = math.prod(out.shape) // out_channels
    gemm = Gemm(rows=rows, cols=out_channels // groups, vectors=vectors, groups=groups, itemsize=out.itemsize)
    return None if weight.activation else [Draft(gemm)]


def _einsum(args: tuple, out: Operand) -> list[Draft] | None:
    """Two-operand einsum without ellipsis: shared output letters batch, contracted letters k."""
    equation, rest = args[0], args[1:]
    pair = rest[0] if len(rest) == 1 and isinstance(rest[0], (list, tuple)) else rest
    if len(pair) != 2 or "..." in equation:
        return None
    a, b = pair
    lhs, _, result = equation.replace(" ", "").partition("->")
    sa, sb = lhs.split(",")
    result = result or "".join(sorted(c for c in sa + sb if (sa + sb).count(c) == 1))
    size = dict(zip(sa, a.shape)) | dict(zip(sb, b.shape))
    batch = math.prod(size[c] for c in set(sa) & set(sb) & set(result))
    k = math.prod(size[c] for c in (set(sa) & set(sb)) - set(result))
    m = math.prod(size[c] for c in set(sa) - set(sb))
    n = math.prod(size[c] for c in set(sb) - set(sa))
    return _drafts(contract(a, b, batch, m, k, n, out.itemsize))


def _attention(args: tuple, kwargs: dict, out: Operand) -> list[Draft]:
    """softmax(q k^T * scale) v: two contractions, the scaling and the softmax, in that order."""
    q, k, v = (list(args) + [kwargs.get(key) for key in ("query", "key", "value")[len(args) :]])[:3]
    batch, length, source = math.prod(out.shape[:-2]), q.shape[-2], k.shape[-2]
    scores = Operand((batch, length, source), out.itemsize, q.activation or k.activation)
    elements = batch * length * source
    return _drafts(
        contract(q, k, batch, length, q.shape[-1], source, out.itemsize),
        Elementwise(fn="mul", elements=elements, operands=1, itemsize=out.itemsize),
        Nonlinear(fn="softmax", elements=elements, itemsize=out.itemsize),
        contract(scores, v, batch, length, source, v.shape[-1], out.itemsize),
    )


def _elementwise(fn: str, args: tuple, kwargs: dict, out: Operand) -> Draft:
    """Work over the largest of the output and the operands, so reductions count their inputs."""
    tensors = list(operands((args, kwargs)))
    elements = max([math.prod(out.shape)] + [math.prod(t.shape) for t in tensors])
    return Draft(Elementwise(fn=fn, elements=elements, operands=max(len(tensors), 1), itemsize=out.itemsize))
