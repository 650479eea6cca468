"""Multiply-accumulates of the ops run inside a context (MACs = FLOPs / 2).

`torch.utils.flop_counter` counts every matrix product it knows. Fused
recurrent kernels it does not (on CPU they count as zero), so they are priced
from their weight shapes and answered with empty tensors instead of being run:
counting needs shapes, never values. Attention runs on the math backend, whose
matmuls the counter prices; the fused CPU kernels it would not.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from hwmodel.dataflow import RecurrentShapes


class MacCounter:
    """Counts the MACs of everything `model` (or a graph of it) runs while the context is open.

    Example:
        >>> layer = nn.Linear(8, 4)
        >>> with MacCounter(layer) as counter:
        ...     _ = layer(torch.zeros(2, 8))
        >>> counter.total
        64
    """

    def __init__(self, model: nn.Module, recurrent: RecurrentPricer | None = None) -> None:
        self.model = model
        self.flops = FlopCounterMode(display=False)
        self.recurrent = recurrent or RecurrentPricer()
        self._contexts = ExitStack()

    @property
    def total(self) -> int:
        return self.flops.get_total_flops() // 2 + self.recurrent.total

    def __enter__(self) -> MacCounter:
        for context in (frozen(self.model), torch.no_grad(), sdpa_kernel(SDPBackend.MATH), self.flops, self.recurrent):
            self._contexts.enter_context(context)
        return self

    def __exit__(self, *exc: object) -> None:
        self._contexts.close()


class RecurrentPricer(RecurrentShapes):
    """Answers every recurrent kernel from its weights' shapes and adds up its MACs."""

    def __init__(self) -> None:
        super().__init__(meta_only=False)
        self.total = 0

    def on_recurrent(self, x: torch.Tensor, weights: list[torch.Tensor]) -> None:
        self.total += recurrent_macs(x, weights)


def recurrent_macs(x: torch.Tensor, weights: list[torch.Tensor]) -> int:
    """Every token of every sequence meets every gate weight once, in each layer and direction."""
    return x.shape[0] * x.shape[1] * sum(w.numel() for w in weights if w.dim() == 2)


@contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """No parameter requires grad while counting: the counter's module tracker hooks the gradients of outputs that
    do, and fails on a module that returns a parameter itself (CaiT's class token, attention-pooling latents)."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)
