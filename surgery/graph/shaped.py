"""One shallow trace with propagated shapes per model, shared by everything one command asks of it.

`surgery plan` finds the sites, checks the student's shapes against the
teacher's, counts both and prices both on the crossbar model; each of these
needs the same graph (the sites kept whole as `call_module` leaves, shapes
propagated on the example input), and tracing and running a model cost more
than anything else in a plan. A `ShapedGraphs` makes each once, and counts
MACs in the same run. A graph describes its model as it was traced:
pruning reshapes a student in place, so a `ShapedGraphs` lives for one command
and is never kept across training.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager

import torch
from torch import fx, nn

from surgery.errors import SurgeryError
from surgery.graph.tracing import propagate_shapes, trace


class ShapedGraphs:
    """Models traced with chosen paths kept whole, shapes and MACs propagated on an example input, each made once.

    Example:
        >>> import timm, torch
        >>> model = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2)
        >>> graphs, sites, example = ShapedGraphs(), ["blocks.0.attn", "blocks.1.attn"], torch.zeros(1, 3, 32, 32)
        >>> graphs.of(model, sites, example) is graphs.of(model, sites, example)
        True
    """

    def __init__(self) -> None:
        self._made: dict[tuple[object, ...], tuple[nn.Module, fx.GraphModule | None]] = {}
        """(id of the model, leaf paths, example's shape and dtype) -> (the model, kept so its id stays its own; graph)."""

    def of(self, model: nn.Module, leaf_paths: Collection[str], example: torch.Tensor) -> fx.GraphModule | None:
        """`model` traced with `leaf_paths` kept whole, shapes and MACs (`MACS`) propagated on `example` in eval mode;
        None where torch.fx cannot trace the model. A later call with an example of the same shape and dtype gets
        the same graph.

        Raises:
            SurgeryError: the graph traces but its shapes do not propagate (the op, its node and module named).
        """
        key = (id(model), frozenset(leaf_paths), tuple(example.shape), example.dtype)
        if key not in self._made:
            self._made[key] = (model, _shaped(model, leaf_paths, example))
        return self._made[key][1]


def _shaped(model: nn.Module, leaf_paths: Collection[str], example: torch.Tensor) -> fx.GraphModule | None:
    with evaluating(model):
        try:
            graph = trace(model, leaf_paths=leaf_paths)
        except SurgeryError:
            return None
        propagate_shapes(graph, example, count_macs=True)
    return graph


@contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode while shapes propagate, so no batch-norm statistic moves and no training-only branch is traced;
    each module's own mode comes back after."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.train(training)
