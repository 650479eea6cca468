"""Hooks that read block activations (and the tokens blocks attend to) during a forward pass, or feed blocks the teacher's inputs."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.hooks import RemovableHandle

from surgery.rewrite.adapters import real_tokens

Register = Callable[[nn.Module, str], RemovableHandle]


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (hooks go on its submodules)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


@contextmanager
def capture_outputs(model: nn.Module, paths: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Yields a dict filled with each named submodule's output during the forward passes inside."""
    outputs: dict[str, torch.Tensor] = {}

    def register(module: nn.Module, path: str) -> RemovableHandle:
        return module.register_forward_hook(lambda _m, _args, output: outputs.__setitem__(path, output))

    with _hooked(model, paths, register):
        yield outputs


@contextmanager
def capture_inputs(model: nn.Module, paths: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Yields a dict filled with each named submodule's first positional input."""
    inputs: dict[str, torch.Tensor] = {}

    def register(module: nn.Module, path: str) -> RemovableHandle:
        return module.register_forward_pre_hook(lambda _m, args: inputs.__setitem__(path, args[0]))

    with _hooked(model, paths, register):
        yield inputs


@contextmanager
def capture_masks(model: nn.Module, paths: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Yields a dict filled with the tokens each named submodule was told to attend to: its `attn_mask` keyword as a
    (B, N) bool, True where kept (a halting model's running tokens); a module called without one stays absent."""
    masks: dict[str, torch.Tensor] = {}

    def register(module: nn.Module, path: str) -> RemovableHandle:
        def read(_module: nn.Module, _args: tuple, kwargs: dict) -> None:
            if kwargs.get("attn_mask") is not None:
                masks[path] = real_tokens(kwargs["attn_mask"], path)

        return module.register_forward_pre_hook(read, with_kwargs=True)

    with _hooked(model, paths, register):
        yield masks


def shared_tokens(path: str, *masks: torch.Tensor | dict[str, torch.Tensor] | None) -> torch.Tensor | None:
    """(B, N) bool: the tokens every mask keeps at `path` (a tensor applies everywhere, a dict by path); None keeps all."""
    found = [mask.get(path) if isinstance(mask, dict) else mask for mask in masks]
    kept = [mask for mask in found if mask is not None]
    return functools.reduce(torch.logical_and, kept) if kept else None


@contextmanager
def force_inputs(model: nn.Module, inputs: dict[str, torch.Tensor]) -> Iterator[None]:
    """Teacher forcing: each named submodule receives the given tensor instead of its own input."""

    def register(module: nn.Module, path: str) -> RemovableHandle:
        return module.register_forward_pre_hook(lambda _m, args: (inputs[path], *args[1:]))

    with _hooked(model, inputs, register):
        yield


@contextmanager
def _hooked(model: nn.Module, paths: Iterable[str], register: Register) -> Iterator[None]:
    handles = [register(unwrap(model).get_submodule(path), path) for path in paths]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
