"""Parameters and multiply-accumulates of one forward pass (MACs = FLOPs / 2).

`torch.utils.flop_counter` counts every matrix product it knows. Fused recurrent
kernels it does not (on CPU they count as zero), so `_RecurrentPricer` prices
them from their weight shapes instead of running them: counting needs shapes,
never values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from hwmodel.dataflow import RecurrentShapes
from hwmodel.tracking import ModuleStack
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
    recurrent = _RecurrentPricer(stack)
    # The math backend runs attention as matmuls, which the counter prices; fused CPU kernels it does not.
    with _frozen(model), torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter, stack, recurrent:
        model(example)
    by_module = Counter(
        {_strip_root(name): sum(ops.values()) // 2 for name, ops in counter.get_flop_counts().items() if name != "Global"}
    )
    by_module.update(recurrent.macs_by_module)
    total = counter.get_total_flops() // 2 + recurrent.total
    return Counts(params=sum(p.numel() for p in model.parameters()), macs=total, macs_by_module=dict(by_module))


@contextmanager
def _frozen(model: nn.Module) -> Iterator[None]:
    """No parameter requires grad while counting: the counter's module tracker hooks the gradients of outputs that
    do, and fails on a module that returns a parameter itself (CaiT's class token, attention-pooling latents)."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


def module_params(model: nn.Module, path: str) -> int:
    return sum(p.numel() for p in model.get_submodule(path).parameters())


def recurrent_macs(x: torch.Tensor, weights: list[torch.Tensor]) -> int:
    """Every token of every sequence meets every gate weight once, in each layer and direction."""
    return x.shape[0] * x.shape[1] * sum(w.numel() for w in weights if w.dim() == 2)


class _RecurrentPricer(RecurrentShapes):
    """Adds each recurrent op's MACs to every module that was running it."""

    def __init__(self, stack: ModuleStack) -> None:
        super().__init__(meta_only=False)
        self.stack = stack
        self.macs_by_module: Counter[str] = Counter()
        self.total = 0

    def on_recurrent(self, x: torch.Tensor, weights: list[torch.Tensor]) -> None:
        macs = recurrent_macs(x, weights)
        self.total += macs
        for path in set(self.stack.paths):
            self.macs_by_module[path] += macs


def _strip_root(name: str) -> str:
    """Trackers name modules `RootClass.a.b`; `named_modules` says `a.b`."""
    return name.partition(".")[2]
