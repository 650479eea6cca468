"""Attention inside modules torch.fx cannot look into, found by running them.

timm registers some modules as fx leaves because their forward is not
symbolically traceable (caches, data-dependent shapes); an attention inside
one is invisible to the traced dataflow. The probe runs the model once under a
`TorchFunctionMode` that tags every tensor derived from the input, keeps the
module stack with hooks on the opaque modules and their children, and records
each contraction whose operands are two tagged tensors: the same rule as
`surgery.detect.sites`, applied to the values instead of the graph. For each module
that owns such a product it keeps the shapes of one call and the arguments
passed with non-default values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from hwmodel.tracking import ModuleStack
from surgery.graph import contractions
from surgery.graph.calls import AttentionCall, CallShapes, passed_arguments


@dataclass
class _Call:
    input: tuple[int, ...] | None
    arguments: tuple[str, ...]
    output: tuple[int, ...] | None = None
    output_nones: int = 0
    operands: list[tuple[int, ...]] = field(default_factory=list)
    products: list[str] = field(default_factory=list)
    query: tuple[int, ...] | None = None


class _Dataflow(TorchFunctionMode):
    """Tags tensors derived from tagged ones and records activation x activation contractions per module."""

    def __init__(self, stack: ModuleStack, calls: dict[str, _Call]) -> None:
        super().__init__()
        self.tagged: dict[int, torch.Tensor] = {}  # id -> tensor, the reference keeps the id from being reused
        self.stack, self.calls = stack, calls

    def tag(self, tensor: torch.Tensor) -> None:
        self.tagged[id(tensor)] = tensor

    def is_tagged(self, value: object) -> bool:
        return isinstance(value, torch.Tensor) and id(value) in self.tagged

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        inputs = tree_leaves((args, kwargs or {}))
        if any(self.is_tagged(value) for value in inputs):
            for value in tree_leaves(result):
                if isinstance(value, torch.Tensor):
                    self.tag(value)
            if func in contractions.CALLABLES and self.stack.current is not None:
                operands = [value for value in (inputs[1:] if func is torch.einsum else inputs[:3]) if self.is_tagged(value)]
                if len(operands) >= 2:
                    call = self.calls[self.stack.current]
                    call.operands += [tuple(o.shape) for o in operands]
                    call.products.append(getattr(func, "__name__", str(func)))
                    call.query = call.query or tuple(operands[0].shape)
        return result


def probe(model: nn.Module, example: torch.Tensor, opaque: Iterable[str]) -> dict[str, AttentionCall]:
    """Run `model` on `example` and report every module inside the `opaque` paths that multiplies two activations."""
    inside = {path: module for path, module in model.named_modules() if any(path == top or path.startswith(f"{top}.") for top in opaque)}
    calls: dict[str, _Call] = {}
    stack = ModuleStack(inside, on_enter=partial(_enter, calls), on_leave=partial(_leave, calls))
    mode = _Dataflow(stack, calls)
    with stack, mode, torch.no_grad():
        mode.tag(example)
        model(example)
    return {
        path: AttentionCall(
            CallShapes(call.input, call.output, tuple(call.operands), output_nones=call.output_nones), tuple(call.products), call.arguments, call.query
        )
        for path, call in calls.items()
        if call.products
    }


def _enter(calls: dict[str, _Call], path: str, module: nn.Module, args: tuple, kwargs: dict) -> None:
    if path not in calls:  # the first call describes the site
        first = args[0] if args and isinstance(args[0], torch.Tensor) else None
        calls[path] = _Call(tuple(first.shape) if first is not None else None, passed_arguments(module, args, kwargs, _differs))


def _leave(calls: dict[str, _Call], path: str, module: nn.Module, args: tuple, kwargs: dict, output: object) -> None:
    """Keeps the first call's output shape: one tensor, or a tuple of one tensor and Nones (Hugging Face attention)."""
    call = calls[path]
    first, rest = (output[0], output[1:]) if isinstance(output, tuple) and output else (output, ())
    if call.output is None and isinstance(first, torch.Tensor) and all(item is None for item in rest):
        call.output, call.output_nones = tuple(first.shape), len(rest)


def _differs(value: object, default: object) -> bool:
    return isinstance(value, torch.Tensor) or value != default
