"""Batches for the stage engine: one sharding and shuffling policy for every data source.

Every loader draws its order from a `DistributedSampler`, also in a single process
(one replica): its shuffle is a `torch.Generator` seeded with `seed + epoch`, so runs
are reproducible, each epoch reshuffles, and each rank of a multi-process run sees a
disjoint shard. Validation is neither shuffled nor augmented; with several ranks the
sampler pads it by repeating a few images so every rank runs the same number of batches.
Folder data with `repeated_aug` draws its training order from timm's `RepeatAugSampler`
instead (DeiT's repeated augmentation), shuffled by the same `seed + epoch`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from timm.data import resolve_model_data_config
from timm.data.distributed_sampler import RepeatAugSampler
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from surgery.data.digits import digits_class_count, digits_splits, digits_train_size
from surgery.data.folder import build_mixup, folder_class_count, folder_splits, folder_train_size
from surgery.data.splits import Splits
from surgery.data.synthetic import synthetic_splits
from surgery.data.wiki import wiki_class_count, wiki_splits, wiki_train_size
from surgery.errors import SurgeryError
from surgery.recipe.data import Data, DigitsData, FolderData, SyntheticData, WikiData


@dataclass(frozen=True)
class Loaders:
    """What a stage trains and evaluates on."""

    train: DataLoader
    """Yields (inputs, labels int64 (B,)); shuffled, full batches only. Inputs are images float32 (B, C, H, W), or
    for text {"input_ids", "attention_mask"} int64 (B, N), the keyword inputs of a Hugging Face encoder."""
    val: DataLoader
    """Same types; fixed order, no augmentation, a short last batch kept."""
    num_classes: int
    mixup: Callable | None
    """timm `Mixup` to apply to each training (x, y), whose soft targets need soft-target cross-entropy; None: plain labels."""


def build_loaders(
    data: Data,
    input_size: tuple[int, ...],
    batch_size: int,
    *,
    seed: int = 0,
    world_size: int = 1,
    rank: int = 0,
    model: nn.Module | None = None,
    label_smoothing: float = 0.0,
) -> Loaders:
    """Training and validation loaders for this process, from the recipe's `data:` section.

    `batch_size` is the global batch, split evenly over `world_size` processes;
    Folder data takes its mean, std and crop from `model`'s timm data config (ImageNet's
    without a model); `label_smoothing` goes into folder data's Mixup. Text data is tokenized
    by `model`'s own tokenizer, to the data's `max_tokens` or else `input_size` (N,).

    Raises:
        SurgeryError: a batch that does not split over the processes, a missing folder,
            or a training shard smaller than one batch.

    Example:
        >>> from surgery.recipe import DigitsData
        >>> loaders = build_loaders(DigitsData(), (1, 8, 8), batch_size=32)
        >>> images, labels = next(iter(loaders.train))
        >>> tuple(images.shape), labels.dtype, loaders.num_classes
        ((32, 1, 8, 8), torch.int64, 10)
    """
    per_rank = per_rank_batch(batch_size, world_size)
    splits = _splits(data, input_size, seed, model)
    repeats = data.repeated_aug if isinstance(data, FolderData) else 1
    shard = _Shard(world_size, rank, seed, data.workers, repeats)
    mixup = build_mixup(data, splits.num_classes, label_smoothing, per_rank) if isinstance(data, FolderData) else None
    return Loaders(
        train=shard.loader(splits.train, per_rank, train=True),
        val=shard.loader(splits.val, per_rank, train=False),
        num_classes=splits.num_classes,
        mixup=mixup,
    )


def build_val_loader(
    data: Data,
    input_size: tuple[int, ...],
    batch_size: int,
    *,
    seed: int = 0,
    world_size: int = 1,
    rank: int = 0,
    model: nn.Module | None,
    split: Literal["train", "val"] = "val",
) -> DataLoader:
    """The validation loader alone, for evaluation: it works on a split of any size, so no training batch is checked.

    `model` is the model evaluated (required, so folder data is preprocessed as in training; None for ImageNet's defaults).
    `split="train"` reads the training split the same way, in a fixed order (with its training transforms, so it is
    meant for data without augmentation: a linear probe on text embeddings).
    """
    splits = _splits(data, input_size, seed, model)
    dataset = splits.val if split == "val" else splits.train
    return _Shard(world_size, rank, seed, data.workers).loader(dataset, per_rank_batch(batch_size, world_size), train=False)


def class_count(data: Data) -> int:
    """How many classes the data labels, known before any image is read."""
    match data:
        case FolderData():
            return folder_class_count(data)
        case DigitsData():
            return digits_class_count(data)
        case SyntheticData():
            return data.num_classes
        case WikiData():
            return wiki_class_count(data)
    raise TypeError(f"unknown data source {type(data).__name__}")


def train_size(data: Data) -> int:
    """How many examples the training split holds, counted without transforming any."""
    match data:
        case FolderData():
            return folder_train_size(data)
        case DigitsData():
            return digits_train_size(data)
        case SyntheticData():
            return data.num_samples
        case WikiData():
            return wiki_train_size(data)
    raise TypeError(f"unknown data source {type(data).__name__}")


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Reseed the loader's shuffle for `epoch`; call it before iterating each epoch."""
    if isinstance(loader.sampler, (DistributedSampler, RepeatAugSampler)):
        loader.sampler.set_epoch(epoch)


def per_rank_batch(batch_size: int, world_size: int) -> int:
    """Each process's share of the global batch."""
    if batch_size % world_size:
        raise SurgeryError(f"batch_size: {batch_size} does not divide evenly over {world_size} processes")
    return batch_size // world_size


def _splits(data: Data, input_size: tuple[int, ...], seed: int, model: nn.Module | None) -> Splits:
    match data:
        case WikiData():
            if model is None or not isinstance(getattr(model, "name_or_path", None), str):
                raise SurgeryError("data: text data is tokenized by the model's own tokenizer; build it from a transformers model")
            return wiki_splits(data, model.name_or_path, data.max_tokens or input_size[0])
        case FolderData():
            return folder_splits(data, input_size, resolve_model_data_config(model) if model is not None else None)
        case DigitsData():
            return digits_splits(data, input_size)
        case SyntheticData():
            return synthetic_splits(data, input_size, seed)
    raise TypeError(f"unknown data source {type(data).__name__}")


@dataclass(frozen=True)
class _Shard:
    """This process's place in the run: which slice of each dataset it reads, and how."""

    world_size: int
    rank: int
    seed: int
    workers: int
    repeats: int = 1
    """Draws of each training image per epoch (repeated augmentation); 1 draws each once."""

    def loader(self, dataset: Dataset, batch_size: int, *, train: bool) -> DataLoader:
        sampler = self._sampler(dataset, train)
        if train and len(sampler) < batch_size:
            raise SurgeryError(
                f"data: {len(sampler)} training images per process is fewer than one batch of {batch_size}"
            )
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=self.workers,
            persistent_workers=self.workers > 0,
            pin_memory=torch.cuda.is_available(),
            drop_last=train,  # equal-sized steps; timm's Mixup needs an even batch
            generator=torch.Generator().manual_seed(self.seed),  # seeds the workers' augmentation
        )

    def _sampler(self, dataset: Dataset, train: bool) -> DistributedSampler | RepeatAugSampler:
        if train and self.repeats > 1:
            return _SeededRepeatAugSampler(
                dataset, num_replicas=self.world_size, rank=self.rank, num_repeats=self.repeats, seed=self.seed
            )
        return DistributedSampler(
            dataset, num_replicas=self.world_size, rank=self.rank, shuffle=train, seed=self.seed, drop_last=train
        )


class _SeededRepeatAugSampler(RepeatAugSampler):
    """timm's sampler shuffles by the epoch alone; offset by the run's seed, as `DistributedSampler` is."""

    def __init__(self, dataset: Dataset, *, seed: int, **options) -> None:
        super().__init__(dataset, **options)
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(self.seed + epoch)
