"""Parameters and multiply-accumulates of one forward pass (MACs = FLOPs / 2).

Counted by `surgery.graph.macs.MacCounter` (torch's flop counter, and recurrent
kernels priced from their weight shapes), either by running the model
(`count`) or from the MACs a shape propagation recorded on each node of its
graph (`count_graph`), which spares a second forward where the graph is made
anyway.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch
from torch import fx, nn

from hwmodel.tracking import ModuleStack
from surgery.graph.macs import MacCounter, RecurrentPricer
from surgery.graph.tracing import MACS, module_stack
from surgery.models import example_input


@dataclass(frozen=True)
class Counts:
    """Totals and per-module MACs (module paths as in `named_modules`)."""

    params: int
    macs: int
    macs_by_module: dict[str, int]

    def module_macs(self, path: str) -> int:
        return self.macs_by_module.get(path, 0)


def count(model: nn.Module, input_size: tuple[int, ...], batch: int = 1) -> Counts:
    """Count parameters and MACs for a `batch` of inputs of `input_size`: (C, H, W), or (N,) token ids.

    Example:
        >>> import timm
        >>> counts = count(timm.create_model("deit_tiny_patch16_224"), (3, 224, 224))
        >>> round(counts.macs / 1e9, 2), round(counts.params / 1e6, 1)
        (1.25, 5.7)
    """
    reference = next(model.parameters())
    example = example_input(model, input_size, batch)
    example = example.to(reference.dtype) if example.is_floating_point() else example  # token ids stay int64
    stack = ModuleStack(dict(model.named_modules()))
    counter = MacCounter(model, _ModulePricer(stack))
    with counter, stack:
        model(example)
    by_module = Counter(
        {_strip_root(name): sum(ops.values()) // 2 for name, ops in counter.flops.get_flop_counts().items() if name != "Global"}
    )
    by_module.update(counter.recurrent.macs_by_module)
    return Counts(params=_params(model), macs=counter.total, macs_by_module=dict(by_module))


def count_graph(model: nn.Module, graph_module: fx.GraphModule) -> Counts:
    """Count `model` from its graph, shape-propagated with MAC counting (`propagate_shapes(..., count_macs=True)`).

    Modules are counted down to the graph's leaves: a leaf's own submodules get no entry.
    """
    total, by_module = 0, Counter[str]()
    for node in graph_module.graph.nodes:
        macs = node.meta.get(MACS, 0)
        total += macs
        owners = module_stack(node) + ([node.target] if node.op == "call_module" else [])
        for path in dict.fromkeys(owners):
            by_module[path] += macs
    return Counts(params=_params(model), macs=total, macs_by_module=dict(by_module))


def module_params(model: nn.Module, path: str) -> int:
    return _params(model.get_submodule(path))


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class _ModulePricer(RecurrentPricer):
    """Also adds each recurrent op's MACs to every module that was running it."""

    def __init__(self, stack: ModuleStack) -> None:
        super().__init__()
        self.stack = stack
        self.macs_by_module: Counter[str] = Counter()

    def on_recurrent(self, x: torch.Tensor, weights: list[torch.Tensor]) -> None:
        before = self.total
        super().on_recurrent(x, weights)
        for path in set(self.stack.paths):
            self.macs_by_module[path] += self.total - before


def _strip_root(name: str) -> str:
    """Trackers name modules `RootClass.a.b`; `named_modules` says `a.b`."""
    return name.partition(".")[2]
