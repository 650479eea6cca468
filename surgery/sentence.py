"""Sentence embeddings of a text encoder: the mean of its real tokens' last hidden states, as sentence-transformers pools.

all-MiniLM-L6-v2 is trained for exactly this pooling (its sentence-transformers
config: mean tokens, then L2 normalisation, which cosines ignore). Padding carries
no weight, so a sentence's embedding does not depend on what it was batched with.
"""

from __future__ import annotations

import torch
from torch import nn


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, N, D) hidden states, (B, N) mask (1 at real tokens) -> (B, D), the mean over each row's real tokens.

    Example:
        >>> mean_pool(torch.tensor([[[1.0], [3.0], [100.0]]]), torch.tensor([[1, 1, 0]])).tolist()
        [[2.0]]
    """
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


def sentence_embedding(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, D) embeddings of a Hugging Face encoder's batch (its `last_hidden_state`, mean-pooled)."""
    hidden = model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    return mean_pool(hidden, attention_mask)


class SentenceEncoder(nn.Module):
    """(input_ids, attention_mask) -> sentence embedding: one tensor in, one out, for ONNX export and latency."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return sentence_embedding(self.encoder, input_ids, attention_mask)
