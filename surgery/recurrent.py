"""Shape-only execution of fused recurrent ops (`torch.lstm`, `torch.gru`, `torch.rnn_*`).

On the meta device these ops decompose into several ops per time step, which
takes minutes for a ViT's worth of LSTMs; shapes follow from the weights alone.
"""

from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode

RECURRENT_OUTPUTS = {torch.lstm: 3, torch.gru: 2, torch.rnn_tanh: 2, torch.rnn_relu: 2}


class RecurrentShapes(TorchFunctionMode):
    """Answers recurrent ops with empty tensors of the right shape instead of computing them.

    Args:
        meta_only: skip only on meta tensors (shape propagation); otherwise always (counting).
    """

    def __init__(self, meta_only: bool = True) -> None:
        super().__init__()
        self.meta_only = meta_only

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if not self._skips(func, args):
            return func(*args, **(kwargs or {}))
        x, hx, weights, _, _, _, _, bidirectional, _ = args
        self.on_recurrent(x, list(weights))
        directions = 2 if bidirectional else 1
        output = x.new_empty(*x.shape[:2], weights[1].shape[1] * directions)  # W_hh is (gates*H, H_out)
        return (output, *(h.new_empty(h.shape) for h in hx))[: RECURRENT_OUTPUTS[func]]

    def on_recurrent(self, x: torch.Tensor, weights: list[torch.Tensor]) -> None:
        """Hook for subclasses that price the op."""

    def _skips(self, func, args) -> bool:
        # The 9-argument overloads take a padded batch; the packed-sequence ones are computed.
        plain = func in RECURRENT_OUTPUTS and len(args) == 9 and isinstance(args[1], (list, tuple))
        return plain and (not self.meta_only or args[0].is_meta)
