"""Random but learnable images: for smoke tests and timing, where accuracy must still be able to rise.

Each image is a coarse random code (C, 4, 4) blown up to (C, H, W) by nearest
upsampling; its label is the argmax of a fixed random linear map of the code, so
the labels are a linear function of the pixels and a model can fit them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from surgery.data.splits import Splits
from surgery.recipe.data import SyntheticData

GRID = 4  # side of the coarse code that decides the label


def synthetic_splits(data: SyntheticData, input_size: tuple[int, int, int], seed: int) -> Splits:
    """`num_samples` training and `num_samples` validation images, all fixed by `seed`."""
    generator = torch.Generator().manual_seed(seed)
    channels, height, width = input_size
    grid = (min(GRID, height), min(GRID, width))
    teacher = torch.randn(channels * grid[0] * grid[1], data.num_classes, generator=generator)
    train = _sample(data.num_samples, input_size, grid, teacher, generator)
    val = _sample(data.num_samples, input_size, grid, teacher, generator)
    return Splits(train, val, data.num_classes)


def _sample(
    n: int, input_size: tuple[int, int, int], grid: tuple[int, int], teacher: torch.Tensor, generator: torch.Generator
) -> TensorDataset:
    codes = torch.randn(n, input_size[0], *grid, generator=generator)  # (N, C, g, g)
    images = F.interpolate(codes, size=input_size[1:], mode="nearest")  # (N, C, H, W)
    return TensorDataset(images, (codes.flatten(1) @ teacher).argmax(1))
