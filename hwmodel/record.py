"""Expanding an opaque module call by running it once and watching what it does.

An fx leaf that is not a primitive op (a substitute kept whole, as `surgery`
keeps its sites, or code fx cannot trace, such as a Python loop over heads) is
run on zero tensors of the traced shapes; a whole model fx cannot trace is run
on its example input (`record_workload`). Forward hooks catch its primitive
submodules, a `TorchFunctionMode` the functional calls between them, and
tensors are followed by identity to wire dependencies. Fused recurrent kernels
are answered with empty tensors of the right shape: only shapes matter here.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_map

from hwmodel.builder import Builder, Frontier
from hwmodel.calls import Draft, Operand, classify_call
from hwmodel.dataflow import RecurrentShapes
from hwmodel.modules import classify_module, is_primitive
from hwmodel.tracking import ModuleStack
from hwmodel.workload import Workload


def record_call(module: nn.Module, path: str, args: Any, kwargs: Any, builder: Builder, incoming: Frontier) -> Frontier:
    """Append the ops of `module(*args, **kwargs)` to `builder`; `Operand`s in the arguments stand for tensors."""
    recorder = _Recorder(module, path, builder)
    real_args, real_kwargs = recorder.materialize((args, kwargs), incoming)
    with torch.no_grad(), recorder.stack, recorder:
        out = module(*real_args, **real_kwargs)
    return recorder.frontier_of(out) or incoming


def record_workload(model: nn.Module, *inputs: torch.Tensor) -> Workload:
    """The ops of one forward of `model` on `inputs` (token ids, say), found by running it: for models fx cannot trace.

    Example:
        >>> model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 2))
        >>> [type(op).__name__ for op in record_workload(model, torch.zeros(1, 3, dtype=torch.long)).ops]
        ['Gemm']
    """
    builder = Builder()
    recorder = _Recorder(model, "", builder)
    recorder._tag(list(inputs), frozenset(), activation=True)
    with torch.no_grad(), recorder.stack, recorder:
        model(*inputs)
    return builder.workload()


class _Recorder(RecurrentShapes):
    """Watches one module call: ops go to the builder, tensors map to the ops that produced them."""

    def __init__(self, root: nn.Module, path: str, builder: Builder) -> None:
        super().__init__(meta_only=False)
        self.root, self.builder = root, builder
        children = {f"{path}.{name}" if path else name: m for name, m in root.named_modules() if m is not root}
        self.stack = ModuleStack(children, on_enter=self._enter, on_leave=self._leave, outer=[path] if path else [])
        self.depth, self.quiet = 0, False
        self.frontier: dict[int, Frontier] = {}
        self.activations: set[int] = set()
        self.alive: list[torch.Tensor] = []  # keeps ids unique while recording

    def materialize(self, values: Any, incoming: Frontier) -> Any:
        """Zero tensors for the Operands in `values`, tagged with the caller's frontier."""
        reference = next(self.root.parameters(), torch.zeros(()))
        dtype = reference.dtype if reference.is_floating_point() else torch.float32

        def real(value: Any) -> Any:
            if not isinstance(value, Operand):
                return value
            tensor = torch.zeros(value.shape, dtype=dtype, device=reference.device)
            self._tag([tensor], incoming, value.activation)
            return tensor

        return tree_map(real, values, is_leaf=lambda v: isinstance(v, Operand))

    def frontier_of(self, value: Any) -> Frontier:
        return frozenset().union(*(self.frontier.get(id(t), frozenset()) for t in _tensors(value)))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = super().__torch_function__(func, types, args, kwargs)
        if self.depth == 0 and not self.quiet and _tensors(out):
            name = getattr(func, "__name__", str(func))
            self._observe(name, (args, kwargs), out, partial(_classify_call, name))
        return out

    def _enter(self, path: str, module: nn.Module, args: tuple, kwargs: dict) -> None:
        self.depth += is_primitive(module)

    def _leave(self, path: str, module: nn.Module, args: tuple, kwargs: dict, out: Any) -> None:
        if is_primitive(module):
            self.depth -= 1
            if self.depth == 0:
                self._observe(path.replace(".", "_"), (args, kwargs), out, partial(_classify_module, module))

    def _observe(self, name: str, inputs: Any, out: Any, classify: Classifier) -> None:
        """Price one call: drafts from `classify(operand inputs, operand output)`, outputs tagged with them."""
        self.quiet = True
        try:
            tensors = _tensors(inputs)
            incoming = self.frontier_of(tensors)
            activation = any(id(t) in self.activations for t in tensors)
            single = self._operand(out) if isinstance(out, torch.Tensor) else None
            drafts = classify(tree_map(self._operand, inputs), single)
            if drafts is None:
                if activation:
                    self.builder.skip(name)
                drafts = []
            self._tag(_tensors(out), self.builder.place(drafts, incoming, self.stack.current or "", name), activation)
        finally:
            self.quiet = False

    def _operand(self, value: Any) -> Any:
        if not isinstance(value, torch.Tensor):
            return value
        return Operand(tuple(value.shape), value.element_size(), id(value) in self.activations)

    def _tag(self, tensors: list[torch.Tensor], frontier: Frontier, activation: bool) -> None:
        for tensor in tensors:
            self.alive.append(tensor)
            self.frontier[id(tensor)] = frontier
            if activation:
                self.activations.add(id(tensor))


Classifier = Callable[[Any, Operand | None], list[Draft] | None]


def _classify_call(name: str, inputs: Any, out: Operand | None) -> list[Draft] | None:
    args, kwargs = inputs
    return classify_call(name, args, kwargs, out)


def _classify_module(module: nn.Module, inputs: Any, out: Operand | None) -> list[Draft] | None:
    tensors = [x for x in tree_flatten(inputs)[0] if isinstance(x, Operand)]
    return classify_module(module, tensors, out)


def _tensors(value: Any) -> list[torch.Tensor]:
    return [v for v in tree_flatten(value)[0] if isinstance(v, torch.Tensor)]
