"""What a model makes of a batch: logits of an image classifier, or a text encoder's sentence embeddings.

A batch's inputs are an image tensor, or for text the keyword inputs of a Hugging Face
encoder ({"input_ids", "attention_mask"}); every loss and metric reads the model through
`predict`, so stages and evaluation need not know which.
"""

from __future__ import annotations

from typing import Union

import torch
from torch import nn
from torch.utils._pytree import tree_map

from surgery.sentence import sentence_embedding

Inputs = Union[torch.Tensor, dict[str, torch.Tensor]]


def to_device(inputs: Inputs, device: torch.device) -> Inputs:
    return tree_map(lambda tensor: tensor.to(device, non_blocking=True), inputs)


def is_text(inputs: Inputs) -> bool:
    return isinstance(inputs, dict)


def predict(model: nn.Module, inputs: Inputs) -> torch.Tensor:
    """Logits (B, classes) for images; the mean-pooled sentence embedding (B, D) for text."""
    if is_text(inputs):
        return sentence_embedding(model, inputs["input_ids"], inputs["attention_mask"])
    return model(inputs)


def token_mask(inputs: Inputs) -> torch.Tensor | None:
    """(B, N) bool, True at real tokens; None for images, where every token is real."""
    return inputs["attention_mask"].bool() if is_text(inputs) else None
