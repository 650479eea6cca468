"""Dataflow facts about traced models, shared by site detection and workload extraction.

Which fx nodes carry activations (values derived from the model's inputs), and
how to run fused recurrent kernels for their shapes alone.
"""

from __future__ import annotations

import torch
from torch import fx
from torch.overrides import TorchFunctionMode

RECURRENT_OUTPUTS = {torch.lstm: 3, torch.gru: 2, torch.rnn_tanh: 2, torch.rnn_relu: 2}

# Reading a shape, size or dtype, or making a fresh tensor of an activation's shape, yields
# metadata, not activations: dependence stops there.
_METADATA_METHODS = {"size", "dim", "numel", "type", "new_zeros", "new_ones", "new_full", "new_empty"}
_METADATA_FUNCTIONS = {torch.zeros_like, torch.ones_like, torch.full_like, torch.empty_like}
_METADATA_ATTRS = {"shape", "dtype", "device", "ndim"}


def activation_nodes(graph: fx.Graph) -> set[fx.Node]:
    """Nodes whose values derive from the placeholders without passing through a shape-only read."""
    carries: set[fx.Node] = set()
    for node in graph.nodes:
        if node.op == "placeholder" or (not _is_metadata(node) and any(i in carries for i in node.all_input_nodes)):
            carries.add(node)
    return carries


def _is_metadata(node: fx.Node) -> bool:
    if node.op == "call_method":
        return node.target in _METADATA_METHODS
    if node.op != "call_function":
        return False
    return node.target in _METADATA_FUNCTIONS or (node.target is getattr and node.args[1] in _METADATA_ATTRS)


class RecurrentShapes(TorchFunctionMode):
    """Answers recurrent kernels (`torch.lstm`, `torch.gru`, `torch.rnn_*`) with empty tensors of the right shape.

    On the meta device these kernels decompose into several ops per time step,
    which takes minutes for a ViT's worth of LSTMs; their shapes follow from the
    weights alone.

    Args:
        meta_only: answer only calls on meta tensors (shape propagation); otherwise every call.
    """

    def __init__(self, meta_only: bool = False) -> None:
        super().__init__()
        self.meta_only = meta_only

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if not self._answers(func, args):
            return func(*args, **(kwargs or {}))
        x, hx, weights, bidirectional = args[0], args[1], list(args[2]), args[7]
        self.on_recurrent(x, weights)
        output = x.new_empty(*x.shape[:2], weights[1].shape[1] * (2 if bidirectional else 1))  # W_hh: (gates*H, H_out)
        states = hx if isinstance(hx, (list, tuple)) else [hx]
        return (output, *(h.new_empty(h.shape) for h in states))[: RECURRENT_OUTPUTS[func]]

    def on_recurrent(self, x: torch.Tensor, weights: list[torch.Tensor]) -> None:
        """Hook for subclasses that price or record the op."""

    def _answers(self, func, args: tuple) -> bool:
        # The padded-batch overloads (input, hx, params, has_biases, layers, dropout, train,
        # bidirectional, batch_first) take a 3-D input; the packed-sequence ones are computed.
        padded = func in RECURRENT_OUTPUTS and len(args) == 9 and args[0].dim() == 3
        return padded and (not self.meta_only or args[0].is_meta)
