"""The value every data source builds: a training and a validation dataset, and the label count."""

from __future__ import annotations

from typing import NamedTuple

from torch.utils.data import Dataset


class Splits(NamedTuple):
    """Both datasets yield (image float32 (C, H, W), label int), or ({"input_ids", "attention_mask"}, label) for text;
    batching and sharding come later."""

    train: Dataset
    val: Dataset
    num_classes: int
