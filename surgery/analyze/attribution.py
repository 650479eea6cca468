"""Cumulative gradient attribution across blocks (paper appendix C): token dependencies through the whole stack.

A site's own map says what one attention or substitute reads. What a token at
depth k has gathered is the product of every block up to k, residual paths
included. So the model runs once with its first block's input (the tokens after
patch embedding) as the gradient leaf x₀, and, for every block k and output
token i, the map holds ‖∂ Σ_c x_k[i, c] / ∂ x₀[j]‖ over channels, summed over the
samples, rows normalised. It works on teacher and student alike: it needs only
the blocks' paths, whose outputs must be (B, N, C) tokens like their input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import torch
from torch import nn

from surgery.analyze.dependency import normalise_rows, token_gradients


@torch.enable_grad()
def cumulative_attribution(model: nn.Module, blocks: list[str], images: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Block path -> (N, N) attribution of its output tokens to the first block's input tokens, over `images`.

    `blocks` are in execution order; the first one's input is the leaf. Blocks are taken as the model calls them.
    """
    if not images:
        raise ValueError("cumulative attribution needs at least one batch of images")
    totals: dict[str, torch.Tensor] = {}
    for batch in images:
        with _block_outputs(model, blocks) as (leaf, outputs):
            model(batch)
        for path in blocks:
            totals[path] = totals.get(path, 0) + _attribution(_tokens(outputs, path), leaf[0])
    return {path: normalise_rows(total) for path, total in totals.items()}


@contextmanager
def _block_outputs(model: nn.Module, blocks: list[str]) -> Iterator[tuple[list[torch.Tensor], dict[str, torch.Tensor]]]:
    """Makes the first block's input a gradient leaf and collects every block's output while the model runs."""
    leaf: list[torch.Tensor] = []
    outputs: dict[str, torch.Tensor] = {}

    def make_leaf(_module: nn.Module, args: tuple) -> tuple:
        leaf.append(args[0].detach().requires_grad_(True))
        return (leaf[-1], *args[1:])

    def keep(path: str) -> Callable[[nn.Module, tuple, object], None]:
        def hook(_module: nn.Module, _args: tuple, output: object) -> None:
            outputs.setdefault(path, output[0] if isinstance(output, tuple) else output)

        return hook

    with ExitStack() as hooks:
        hooks.callback(model.get_submodule(blocks[0]).register_forward_pre_hook(make_leaf).remove)
        for path in blocks:
            hooks.callback(model.get_submodule(path).register_forward_hook(keep(path)).remove)
        yield leaf, outputs


def _tokens(outputs: dict[str, torch.Tensor], path: str) -> torch.Tensor:
    if path not in outputs:
        raise ValueError(f"{path}: the model never called this block")
    return outputs[path]


def _attribution(output: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
    """(N, N): each output token's gradient norms with respect to the leaf's tokens, summed over samples."""
    if output.dim() != 3 or output.shape[:2] != leaf.shape[:2]:
        raise ValueError(f"a block output of shape {tuple(output.shape)} is not (B, N, C) tokens like its input {tuple(leaf.shape)}")
    return token_gradients(output, leaf)
