"""The contractions that can multiply two activations: one vocabulary for the traced graph and for running code.

Site detection reads them off fx nodes (functions as call targets, tensor
methods by name); the probe sees them as the callables `__torch_function__`
receives, which for methods are `torch.Tensor`'s own attributes.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F

FUNCTIONS = frozenset({torch.matmul, operator.matmul, torch.bmm, torch.baddbmm, torch.einsum, F.scaled_dot_product_attention})
METHODS = frozenset({"matmul", "bmm", "baddbmm", "__matmul__"})
CALLABLES = FUNCTIONS | {getattr(torch.Tensor, name) for name in METHODS}
"""What a `TorchFunctionMode` sees for a contraction, functions and tensor methods alike."""
