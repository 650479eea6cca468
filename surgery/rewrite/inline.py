"""Attention written inline in a block's forward: the block's own fx graph, rewritten around a substitute.

The substitute reads the first node of the attention region
(`surgery.detect.regions`) and its output replaces every use of the last; what
only the attention used (q, k, v reshapes, softmax) is removed as dead code,
and the rest of the block (projections, MLP, residual) runs unchanged.
"""

from __future__ import annotations

from torch import fx, nn

from surgery.detect.regions import attention_region

SUBSTITUTE = "substitute"
"""Name of the substitute inside the rewritten block."""


def inline_rewrite(block: nn.Module, input_shape: tuple[int, ...], substitute: nn.Module) -> fx.GraphModule:
    """`block` as a GraphModule whose attention region is replaced by `substitute`; its other weights are kept."""
    graph_module, start, end = attention_region(block, input_shape)
    graph = graph_module.graph
    graph_module.add_submodule(SUBSTITUTE, substitute)
    with graph.inserting_after(end):
        mixed = graph.call_module(SUBSTITUTE, (start,))
    end.replace_all_uses_with(mixed)
    graph.eliminate_dead_code()
    graph.lint()
    graph_module.delete_all_unused_submodules()
    graph_module.recompile()
    return graph_module
