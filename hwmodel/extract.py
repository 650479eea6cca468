"""Workload extraction from a shape-propagated torch.fx GraphModule (the one hwmodel module that needs fx).

Each node is classified by `hwmodel.modules` (call_module) or `hwmodel.calls`
(call_function / call_method); a leaf module that is not a primitive op is
expanded by `hwmodel.record`. A contraction is an activation x activation
product when both operands derive from the graph's placeholders; reading a
shape, size or dtype stops that derivation. Ops are attributed to the
innermost module of `node.meta["nn_module_stack"]`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx
from torch.fx.node import map_arg
from torch.fx.passes.shape_prop import ShapeProp

from hwmodel.builder import Builder, Frontier
from hwmodel.calls import Operand, classify_call, operands
from hwmodel.dataflow import RecurrentShapes, activation_nodes
from hwmodel.modules import classify_module
from hwmodel.record import record_call
from hwmodel.workload import Workload

PLAIN = "plain_value"
"""node.meta key of a node's value when it is plain Python data (a feature-map size, say), not a tensor."""


class ValueProp(ShapeProp):
    """ShapeProp that also keeps small plain values, so a leaf re-run for its ops gets them back (sizes, flags).

    A graph propagated by it (or a subclass) can be given to `extract_workload` without example inputs.
    """

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        if _is_plain(result):
            n.meta[PLAIN] = result
        return result


def _is_plain(value: object) -> bool:
    if isinstance(value, (tuple, list)):
        return len(value) <= 8 and all(_is_plain(v) for v in value)
    return isinstance(value, (int, float, bool))


def extract_workload(graph_module: fx.GraphModule, *example_inputs: Any) -> Workload:
    """The ops of `graph_module`, shape-propagated first when example inputs are given.

    Example:
        >>> import torch
        >>> gm = torch.fx.symbolic_trace(torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.GELU()))
        >>> [type(op).__name__ for op in extract_workload(gm, torch.randn(2, 8)).ops]
        ['Gemm', 'Nonlinear']
    """
    if example_inputs:
        with torch.no_grad(), RecurrentShapes():
            ValueProp(graph_module).propagate(*example_inputs)
    graph = graph_module.graph
    if not any("tensor_meta" in node.meta for node in graph.nodes):
        raise ValueError("the graph carries no shapes: run ShapeProp on it or pass example inputs")
    carries = activation_nodes(graph)
    builder = Builder()
    frontier: dict[fx.Node, Frontier] = {}
    for node in graph.nodes:
        incoming = frozenset().union(*(frontier[n] for n in node.all_input_nodes))
        frontier[node] = _visit(node, graph_module, carries, builder, incoming)
    return builder.workload()


def _visit(node: fx.Node, graph_module: fx.GraphModule, carries: set[fx.Node], builder: Builder, incoming: Frontier) -> Frontier:
    if node.op not in ("call_module", "call_function", "call_method"):
        return incoming
    args, kwargs = (map_arg(value, lambda n: n.meta[PLAIN] if PLAIN in n.meta else _operand(n, carries)) for value in (node.args, node.kwargs))
    out = _operand(node, carries)
    if node.op == "call_module":
        module = graph_module.get_submodule(node.target)
        drafts = classify_module(module, list(operands(args)), out)
        if drafts is None:
            return record_call(module, node.target, args, kwargs, builder, incoming)
        return builder.place(drafts, incoming, node.target, node.name)
    name = node.target if node.op == "call_method" else getattr(node.target, "__name__", str(node.target))
    drafts = classify_call(name, args, kwargs, out)
    if drafts is None:
        if any(o.activation for o in operands((args, kwargs))):
            builder.skip(name)
        return incoming
    return builder.place(drafts, incoming, _owner(node), node.name)


def _operand(node: fx.Node, carries: set[fx.Node]) -> Operand | None:
    meta = node.meta.get("tensor_meta")
    if not hasattr(meta, "shape"):
        return None
    return Operand(tuple(meta.shape), meta.dtype.itemsize, node in carries)


def _owner(node: fx.Node) -> str:
    """Innermost module on the node's module stack; entries are (qualified path, class)."""
    stack = node.meta.get("nn_module_stack") or {}
    return next((path for path, _ in reversed(list(stack.values())) if path), "")
