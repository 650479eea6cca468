"""The contractions that can multiply two activations: one vocabulary for the traced graph and for running code.

Site detection reads them off fx nodes (functions as call targets, tensor
methods by name); the probe sees them as the callables `__torch_function__`
receives, which for methods are `torch.Tensor`'s own attributes. A contraction
is an activation x activation product when two of its operands derive from the
model input (`hwmodel.dataflow.activation_nodes`).
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import fx

from hwmodel.dataflow import activation_nodes

FUNCTIONS = frozenset({torch.matmul, operator.matmul, torch.bmm, torch.baddbmm, torch.einsum, F.scaled_dot_product_attention})
METHODS = frozenset({"matmul", "bmm", "baddbmm", "__matmul__"})
CALLABLES = FUNCTIONS | {getattr(torch.Tensor, name) for name in METHODS}
"""What a `TorchFunctionMode` sees for a contraction, functions and tensor methods alike."""


def activation_products(graph_module: fx.GraphModule) -> list[fx.Node]:
    """Contractions whose two (or more) tensor operands both depend on the graph's inputs."""
    carries = activation_nodes(graph_module.graph)
    return [node for node in graph_module.graph.nodes if is_contraction(node) and sum(a in carries for a in contraction_operands(node)) >= 2]


def is_contraction(node: fx.Node) -> bool:
    if node.op == "call_function":
        return node.target in FUNCTIONS
    return node.op == "call_method" and node.target in METHODS


def contraction_operands(node: fx.Node) -> list[fx.Node]:
    """The tensor operands of a contraction (einsum's after its equation, attention's q, k, v)."""
    operands = node.args[1:] if node.target is torch.einsum else node.args
    if node.target is F.scaled_dot_product_attention:
        operands = node.args[:3]
    flat = [a for arg in operands for a in (arg if isinstance(arg, (list, tuple)) else (arg,))]
    return [a for a in flat if isinstance(a, fx.Node)]
