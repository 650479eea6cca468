"""torch.fx tracing of timm models that respects timm's own leaf and autowrap registrations.

Two depths: a *deep* trace (everything but timm's and torch's leaves) for finding
attention by dataflow, and a *shallow* trace where chosen modules (the sites)
stay single `call_module` nodes, which is what the rewrite edits.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import math
from collections.abc import Collection

import torch
from torch import fx, nn

from hwmodel.dataflow import RecurrentShapes
from hwmodel.extract import ValueProp
from surgery.errors import SurgeryError
from surgery.graph.macs import MacCounter


class TimmTracer(fx.Tracer):
    """An fx tracer that keeps timm's registered no-trace modules/functions and `leaf_paths` opaque."""

    def __init__(self, leaf_paths: Collection[str] = ()) -> None:
        from timm.layers import get_notrace_functions, get_notrace_modules

        super().__init__(
            autowrap_modules=(math,),
            autowrap_functions=tuple(f for f in get_notrace_functions() if callable(f)),
        )
        self.leaf_paths = frozenset(leaf_paths)
        self.timm_leaves = tuple(get_notrace_modules())
        self._parameter_names: dict[int, str] | None = None

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        if qualified_name in self.leaf_paths or isinstance(module, self.timm_leaves):
            return True
        return super().is_leaf_module(module, qualified_name)

    def getattr(self, attr: str, attr_val: object, parameter_proxy_cache: dict[str, fx.Proxy]) -> object:
        """A parameter read in a forward (a layer scale, a class token) becomes a `get_attr` node of its qualified name.

        fx finds that name by scanning every parameter of the model on each read, which is quadratic in depth: a
        40-block ViT-giant with layer scales spent most of its trace there. The names are looked up instead.
        """
        if not isinstance(attr_val, nn.Parameter):
            return super().getattr(attr, attr_val, parameter_proxy_cache)
        if self._parameter_names is None:
            self._parameter_names = {id(p): name for name, p in self.root.named_parameters()}
        name = self._parameter_names.get(id(attr_val))
        if name is None:  # not the model's own: fx decides
            return super().getattr(attr, attr_val, parameter_proxy_cache)
        if name not in parameter_proxy_cache:
            parameter_proxy_cache[name] = self.create_proxy("get_attr", name, (), {})
        return parameter_proxy_cache[name]


def trace(model: nn.Module, leaf_paths: Collection[str] = ()) -> fx.GraphModule:
    """Trace `model` for a single image-batch input; other forward arguments take their defaults.

    Raises:
        SurgeryError: the model's forward cannot be traced symbolically.
    """
    tracer = TimmTracer(leaf_paths)
    try:
        graph = tracer.trace(model, concrete_args=_default_arguments(model))
    except Exception as error:  # fx raises many types (TraceError, TypeError, ...) for untraceable code
        raise SurgeryError(f"{type(model).__name__}: torch.fx cannot trace this model: {error}") from error
    return fx.GraphModule(tracer.root, graph, type(model).__name__)


def _default_arguments(model: nn.Module) -> dict[str, object]:
    """Pin every forward parameter after the first to its default (masks off, no extra inputs)."""
    parameters = list(inspect.signature(model.forward).parameters.values())[1:]
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def module_stack(node: fx.Node) -> list[str]:
    """Qualified paths of the modules that were executing when `node` was recorded, outermost first."""
    stack = node.meta.get("nn_module_stack", {})
    return [path for path, _ in stack.values() if path]


def shape_of(node: fx.Node) -> tuple[int, ...] | None:
    """The tensor shape ShapeProp recorded for `node`, if it produced one tensor."""
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape) if hasattr(meta, "shape") else None


MACS = "macs"
"""node.meta key: the multiply-accumulates of the node's op, recorded by `propagate_shapes(..., count_macs=True)`."""


def propagate_shapes(graph_module: fx.GraphModule, example: torch.Tensor, count_macs: bool = False) -> None:
    """Run ShapeProp, keeping small plain values too (hwmodel's `ValueProp`, so `extract_workload` can take the graph
    as it is), and with `count_macs` each node's MACs (`MACS`, see `surgery.graph.macs`); a failure is one line naming
    the node, its module and the op's own error.

    ShapeProp prints the op's traceback to stderr before re-raising; that print is swallowed here.
    """
    propagation = _Propagation(graph_module, MacCounter(graph_module) if count_macs else None)
    try:
        with RecurrentShapes(meta_only=True), torch.no_grad(), propagation.counting, contextlib.redirect_stderr(io.StringIO()):
            propagation.propagate(example)  # no autograd graph: modules that cache tensors stay deep-copyable
    except Exception as error:  # ShapeProp re-raises the op's own error type
        cause = error.__cause__ or error
        running = propagation.running
        where = f" at {running.name} in {'.'.join(module_stack(running)[-1:]) or 'the model'}" if running else ""
        first = next((line for line in str(cause).splitlines() if line.strip()), type(cause).__name__)
        raise SurgeryError(f"shape propagation failed{where}: {first}") from error


class _Propagation(ValueProp):
    """Remembers the node running, for the error; with a counter, records each node's MACs."""

    def __init__(self, graph_module: fx.GraphModule, counter: MacCounter | None) -> None:
        super().__init__(graph_module)
        self.counter = counter
        self.counting = counter or contextlib.nullcontext()
        self.running: fx.Node | None = None

    def run_node(self, n: fx.Node) -> object:
        self.running = n
        if self.counter is None:
            return super().run_node(n)
        before = self.counter.total
        result = super().run_node(n)
        n.meta[MACS] = self.counter.total - before
        return result
