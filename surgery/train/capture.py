"""Hooks that read block activations during a forward pass, or feed blocks the teacher's inputs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (hooks go on its submodules)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


@contextmanager
def capture_outputs(model: nn.Module, paths: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Yields a dict filled with each named submodule's output during the forward passes inside."""
    outputs: dict[str, torch.Tensor] = {}
    handles = [
        unwrap(model).get_submodule(path).register_forward_hook(_store(outputs, path)) for path in paths
    ]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def capture_inputs(model: nn.Module, paths: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Yields a dict filled with each named submodule's first positional input."""
    inputs: dict[str, torch.Tensor] = {}
    handles = [
        unwrap(model).get_submodule(path).register_forward_pre_hook(_store_input(inputs, path)) for path in paths
    ]
    try:
        yield inputs
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def force_inputs(model: nn.Module, inputs: dict[str, torch.Tensor]) -> Iterator[None]:
    """Teacher forcing: each named submodule receives the given tensor instead of its own input."""
    handles = [
        unwrap(model).get_submodule(path).register_forward_pre_hook(_replace(value)) for path, value in inputs.items()
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _store(outputs: dict[str, torch.Tensor], path: str):
    def hook(_module: nn.Module, _args: tuple, output: torch.Tensor) -> None:
        outputs[path] = output

    return hook


def _store_input(inputs: dict[str, torch.Tensor], path: str):
    def hook(_module: nn.Module, args: tuple) -> None:
        inputs[path] = args[0]

    return hook


def _replace(value: torch.Tensor):
    def hook(_module: nn.Module, args: tuple) -> tuple:
        return (value, *args[1:])

    return hook
