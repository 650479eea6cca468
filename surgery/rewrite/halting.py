"""AViT-style token halting (Yin et al., A-ViT, CVPR 2022) around a ViT's blocks: a sparser teacher to distil from.

Each patch token accumulates a halting score after every block, h = σ(γ · x₀ − β)
read off its first channel; when the sum reaches 1 − ε the token stops. Later
blocks see it as zeros and attention gives it no weight as a key (an additive
−10⁴ on its column, the `attn_mask` timm's blocks take). A substitute receives
that mask as the tokens to read (`far_modules.padding`), so a recurrence runs
over the retained tokens only. A token's output is its block outputs weighted
by its halting distribution (each block's score, the remainder at the block it
stops in); prefix tokens (the class token) never stop. The last block stops
every token. The model stays the timm model: `blocks` becomes a `HaltingBlocks`
with the same children, so parameter names and site paths are unchanged.

Masking keeps shapes fixed, so halting saves no work here: MAC counts, the
ONNX export and the crossbar cost all price every token. What halting changes
is which tokens each attention sees, and so how sparse the function to
distil is (the sparsity paper's premise).
"""

from __future__ import annotations

import inspect
import math
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from surgery.errors import SurgeryError
from surgery.models import example_input
from surgery.recipe import HaltingGate

HALTED_KEY_BIAS = -1e4
"""Added to the attention logits of a stopped key: no weight, and no NaN where every key of a row stopped."""


@dataclass(frozen=True)
class HaltingTrace:
    """What the last forward pass decided, for the losses and the measurements."""

    ponder: torch.Tensor
    """(B, N) blocks each token ran plus its remainder: A-ViT's ponder cost ρ, differentiable through the remainder."""
    distribution: torch.Tensor
    """(L,) mean over the patch tokens of each token's halting distribution (its output weight per block); sums to 1."""
    kept: tuple[torch.Tensor, ...]
    """Per block, (B, N) bool: the tokens it ran on."""
    prefix_tokens: int

    @property
    def tokens_run(self) -> torch.Tensor:
        """(B,) share of (patch token, block) pairs that ran: 1 is a dense model."""
        ran = torch.stack(self.kept)[:, :, self.prefix_tokens :].float()
        return ran.mean(dim=(0, 2))


class HaltingBlocks(nn.Sequential):
    """A ViT's `blocks` run with per-token halting; the children (and their names) are the original blocks.

    With `follow` set (`following`), tokens run exactly the blocks another model's last forward ran them
    through, weighted by this model's own scores: a student distilled on its teacher's stopping decisions.
    """

    def __init__(self, blocks: nn.Sequential, prefix_tokens: int, gate: HaltingGate) -> None:
        super().__init__(OrderedDict(blocks.named_children()))
        self.prefix_tokens = prefix_tokens
        self.gate = gate
        self.trace: HaltingTrace | None = None
        self.follow: HaltingTrace | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens = x.shape[:2]
        running = x.new_ones(batch, tokens)
        cumulative, ponder, output = x.new_zeros(batch, tokens), x.new_zeros(batch, tokens), torch.zeros_like(x)
        remainder = x.new_ones(batch, tokens)
        halts = torch.ones(tokens, dtype=x.dtype, device=x.device)
        halts[: self.prefix_tokens] = 0
        kept, weights = [], []
        gate, last = self.gate, len(self) - 1
        for index, block in enumerate(self):
            if self.follow is not None:
                running = self.follow.kept[index].to(x.dtype)
            kept.append(running > 0)
            x = block(x * running.unsqueeze(-1), attn_mask=((1 - running) * HALTED_KEY_BIAS)[:, None, None, :])
            score = torch.sigmoid(gate.gate_scale * x[..., 0] - gate.gate_center) * halts if index < last else torch.ones_like(running)
            cumulative = cumulative + score
            continuing = self._continuing(index, cumulative).to(x.dtype) * running
            stopping = running - continuing
            step = torch.minimum(score, remainder)  # the score itself unless a followed token outlives its own gate
            weight = remainder * stopping + step * continuing
            output = output + x * weight.unsqueeze(-1)
            ponder = ponder + running + remainder * stopping
            remainder = remainder - step * continuing
            weights.append(weight[:, self.prefix_tokens :].mean())
            running = continuing
        if not isinstance(output, torch.fx.Proxy):
            self.trace = HaltingTrace(ponder, torch.stack(weights), tuple(kept), self.prefix_tokens)
        return output

    def _continuing(self, index: int, cumulative: torch.Tensor) -> torch.Tensor:
        """Tokens that run the next block: those whose scores have not reached 1 − eps, or those `follow` ran there."""
        if self.follow is None:
            return cumulative < 1 - self.gate.eps
        return self.follow.kept[index + 1] if index + 1 < len(self) else torch.zeros_like(cumulative, dtype=torch.bool)

    def __getstate__(self) -> dict[str, object]:
        """Copies (a student is a deep copy of its teacher) leave the traces behind: they may hold an autograd graph."""
        return {**self.__dict__, "trace": None, "follow": None}

    def extra_repr(self) -> str:
        gate = self.gate
        offset = f"− {gate.gate_center:g}" if gate.gate_center >= 0 else f"+ {-gate.gate_center:g}"
        return f"a token stops once Σ σ({gate.gate_scale:g} · x₀ {offset}) ≥ {1 - gate.eps:g}; {self.prefix_tokens} prefix token(s) run every block"


def install_halting(model: nn.Module, gate: HaltingGate, size: tuple[int, ...]) -> HaltingBlocks:
    """Wrap `model.blocks` in place, and check on one input of `size` that the model's forward runs them.

    Raises:
        SurgeryError: the model has no `blocks` Sequential of blocks taking `attn_mask`, or its forward does not call it
            as one module (timm's VisionTransformer family does; Swin, EVA and others run their blocks otherwise).
    """
    halting, training = _wrap(model, gate), model.training
    with torch.no_grad():
        model.eval()(example_input(model, size))
    model.train(training)
    if halting.trace is None:
        model.blocks = nn.Sequential(OrderedDict(halting.named_children()))
        raise SurgeryError(f"token halting: {type(model).__name__}'s forward runs its blocks one by one, not as `blocks`, so they cannot halt")
    return halting


def _wrap(model: nn.Module, gate: HaltingGate) -> HaltingBlocks:
    blocks = getattr(model, "blocks", None)
    name = type(model).__name__
    if not isinstance(blocks, nn.Sequential) or len(blocks) == 0:
        has = f"{name}'s `blocks` is a {type(blocks).__name__} its forward runs block by block" if isinstance(blocks, nn.Module) else f"{name} has none"
        raise SurgeryError(f"token halting needs a model whose `blocks` is an nn.Sequential of blocks (timm's VisionTransformer); {has}")
    refusing = [path for path, block in blocks.named_children() if "attn_mask" not in inspect.signature(block.forward).parameters]
    if refusing:
        kind = type(blocks.get_submodule(refusing[0])).__name__
        raise SurgeryError(f"token halting passes each block an attn_mask; blocks.{refusing[0]} ({kind}) of {name} takes none")
    prefix = getattr(model, "num_prefix_tokens", None)
    if not isinstance(prefix, int):
        raise SurgeryError(f"token halting keeps the prefix tokens running and {name} does not say how many it has (num_prefix_tokens)")
    model.blocks = HaltingBlocks(blocks, prefix, gate)
    return model.blocks


@contextmanager
def following(student: nn.Module, teacher: nn.Module) -> Iterator[None]:
    """Inside, the student's halting runs each token through the blocks the teacher's last forward ran it through."""
    mine, theirs = halting_of(student), halting_of(teacher)
    if mine is None or theirs is None or theirs.trace is None:
        raise SurgeryError("following the teacher's halting needs a halting student and a teacher that has just run")
    mine.follow = theirs.trace
    try:
        yield
    finally:
        mine.follow = None


def halting_of(model: nn.Module) -> HaltingBlocks | None:
    """The model's halting blocks, if it halts tokens."""
    return next((module for module in model.modules() if isinstance(module, HaltingBlocks)), None)


def depth_prior(blocks: int, target_depth: float, std: float = 1.0) -> torch.Tensor:
    """(blocks,) a Gaussian over the blocks (1-based) centred on `target_depth`, normalised: A-ViT's distributional prior."""
    depths = torch.arange(1, blocks + 1, dtype=torch.float64)
    density = torch.exp(-0.5 * ((depths - target_depth) / std) ** 2) / (std * math.sqrt(2 * math.pi))
    return (density / density.sum()).float()
