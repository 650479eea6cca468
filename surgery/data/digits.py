"""scikit-learn's embedded 8x8 handwritten digits, adapted to the model's input size.

No augmentation: the images are too small for crops or flips to keep their meaning,
so training sees the same tensors every epoch (only their order changes). `classes`
keeps a subset of the digits, relabelled 0..k-1, so one run can learn some digits
and another transfer to the rest.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from surgery.data.splits import Splits
from surgery.recipe.data import DigitsData

NUM_CLASSES = 10
MAX_VALUE = 16.0  # load_digits pixels are counts 0..16


def split_indices(labels: np.ndarray, val_fraction: float, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices: stratified, and fixed by `split_seed` alone so every run holds out the same images."""
    from sklearn.model_selection import train_test_split  # scikit-learn loads in seconds: only when digits are read

    return train_test_split(
        np.arange(len(labels)), test_size=val_fraction, stratify=labels, random_state=split_seed
    )


def digits_class_count(data: DigitsData) -> int:
    """Classes the data labels: the digits kept."""
    return len(data.classes) if data.classes is not None else NUM_CLASSES


def digits_train_size(data: DigitsData) -> int:
    """Images in the training split, without resizing any."""
    _, labels = _load_digits(data.classes)
    return len(split_indices(labels, data.val_fraction, data.split_seed)[0])


def digits_splits(data: DigitsData, input_size: tuple[int, int, int]) -> Splits:
    """Digits resized once to `input_size`, normalised with the training split's statistics."""
    images, labels = _load_digits(data.classes)
    train_idx, val_idx = (torch.as_tensor(i) for i in split_indices(labels, data.val_fraction, data.split_seed))
    x = resize(torch.as_tensor(images, dtype=torch.float32).div(MAX_VALUE).view(-1, 1, 8, 8), input_size)
    train = x[train_idx]
    x = (x - train.mean()) / train.std()  # train stats only: validation must not leak in
    y = torch.as_tensor(labels, dtype=torch.int64)
    channels = input_size[0]
    return Splits(
        TensorDataset(_repeat(x[train_idx], channels), y[train_idx]),
        TensorDataset(_repeat(x[val_idx], channels), y[val_idx]),
        digits_class_count(data),
    )


def _load_digits(classes: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels): every digit, or those of `classes` with label i for the digit classes[i]."""
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    if classes is None:
        return images, labels
    kept = np.isin(labels, classes)
    relabel = np.full(NUM_CLASSES, -1)
    relabel[classes] = np.arange(len(classes))
    return images[kept], relabel[labels[kept]]


def resize(x: torch.Tensor, input_size: tuple[int, int, int]) -> torch.Tensor:
    """(N, 1, 8, 8) -> (N, 1, H, W), bilinearly; once at build time, not per batch."""
    size = tuple(input_size[1:])
    if x.shape[-2:] == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _repeat(x: torch.Tensor, channels: int) -> torch.Tensor:
    """(N, 1, H, W) -> (N, C, H, W) as a view: grey images for an RGB model cost no extra memory."""
    return x.expand(-1, channels, -1, -1)
