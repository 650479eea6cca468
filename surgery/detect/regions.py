"""Attention written inline in a block's forward: find its region in the block's own fx graph.

Some timm blocks compute attention in their forward instead of calling an
attention module (ViT's parallel-scaling blocks fuse q, k, v and the MLP's
input into one projection). Detection then finds the block, which also holds
the MLP and the residual, so swapping the module would drop them. Instead the
block is traced alone and its attention region is cut out of the graph:

- the region ends at the first node after the last activation product that is
  a token sequence again, (B, N, C') (the heads merged back, before the output
  projection);
- it starts at the latest node that every operand of the products (q, k and
  v alike) derives from and that is a token sequence of the block's width,
  (B, N, C) (the normalised input).

`surgery.rewrite.inline` puts the substitute between the two.
"""

from __future__ import annotations

import torch
from torch import fx, nn

from hwmodel.dataflow import activation_nodes
from surgery.graph.contractions import activation_products, contraction_operands
from surgery.graph.tracing import propagate_shapes, shape_of, trace


class InlineAttentionError(ValueError):
    """The block's attention region could not be isolated; the message says why."""


def attention_region(block: nn.Module, input_shape: tuple[int, ...]) -> tuple[fx.GraphModule, fx.Node, fx.Node]:
    """The block traced alone for a (B, N, C) input of `input_shape`, and the first and last node of its attention region."""
    reference = next(block.parameters(), None)
    example = torch.zeros(input_shape, device=reference.device if reference is not None else "cpu")
    graph_module = trace(block)
    propagate_shapes(graph_module, example)
    products = activation_products(graph_module)
    if not products:
        raise InlineAttentionError("no activation x activation product when traced alone")
    batch, tokens, width = example.shape
    order = {node: index for index, node in enumerate(graph_module.graph.nodes)}

    def is_tokens(node: fx.Node, channels: int | None = None) -> bool:
        shape = shape_of(node)
        return shape is not None and len(shape) == 3 and shape[:2] == (batch, tokens) and channels in (None, shape[2])

    end = _first_after(max(products, key=order.__getitem__), is_tokens, order)
    carries = activation_nodes(graph_module.graph)
    operands = [operand for product in products for operand in contraction_operands(product) if operand in carries]
    common = set.intersection(*({operand} | _ancestors(operand) for operand in operands))  # feeds q, k and v alike
    starts = [node for node in common if is_tokens(node, width)]
    if end is None or not starts:
        raise InlineAttentionError("its attention does not start and end on (B, N, C) token sequences")
    return graph_module, max(starts, key=order.__getitem__), end


def region_widths(block: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """(C, C'): the width the substitute reads and the width it must produce."""
    _, start, end = attention_region(block, input_shape)
    return shape_of(start)[-1], shape_of(end)[-1]


def _first_after(node: fx.Node, accept, order: dict[fx.Node, int]) -> fx.Node | None:
    """The earliest node downstream of `node` (itself included) that `accept`s."""
    seen, frontier, found = set(), [node], []
    while frontier:
        current = frontier.pop()
        if current in seen:
            continue
        seen.add(current)
        if accept(current):
            found.append(current)
            continue
        frontier.extend(current.users)
    return min(found, key=order.__getitem__) if found else None


def _ancestors(node: fx.Node) -> set[fx.Node]:
    seen: set[fx.Node] = set()
    frontier = list(node.all_input_nodes)
    while frontier:
        current = frontier.pop()
        if current not in seen:
            seen.add(current)
            frontier.extend(current.all_input_nodes)
    return seen
