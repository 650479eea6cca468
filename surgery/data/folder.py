"""ImageFolder / ImageNet layouts on disk (`root/<split>/<class>/<images>`), with timm's augmentation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from timm.data import (
    DEFAULT_CROP_PCT,
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    ImageDataset,
    Mixup,
    create_dataset,
    create_transform,
)

from surgery.data.splits import Splits
from surgery.errors import SurgeryError
from surgery.recipe.data import FolderData

# What `timm.data.resolve_model_data_config` gives a model without a pretrained config.
DEFAULT_DATA_CONFIG: dict[str, Any] = {
    "mean": IMAGENET_DEFAULT_MEAN,
    "std": IMAGENET_DEFAULT_STD,
    "crop_pct": DEFAULT_CROP_PCT,
    "crop_mode": "center",
}


def folder_splits(data: FolderData, input_size: tuple[int, int, int], model_data_config: dict | None) -> Splits:
    """Both splits, sharing the training split's class indices so a class missing from one cannot shift the rest.

    `model_data_config` (timm's `resolve_model_data_config(model)`) supplies mean, std and crop;
    the recipe supplies the augmentation and the interpolation.
    """
    config = {**DEFAULT_DATA_CONFIG, **(model_data_config or {})}
    train_folder, val_folder = _split_folder(data, data.train_split), _split_folder(data, data.val_split)
    train = _dataset(train_folder, class_map=None)
    train.transform = train_transform(data, input_size, config)
    val = _dataset(val_folder, class_map=train.reader.class_to_idx)
    val.transform = val_transform(data, input_size, config)
    return Splits(train, val, _num_classes(data, len(train.reader.class_to_idx)))


def train_transform(data: FolderData, input_size: tuple[int, int, int], config: dict) -> Any:
    """timm's training pipeline: random-resized crop, flip, auto-augment, colour jitter, random erasing."""
    return create_transform(
        input_size,
        is_training=True,
        auto_augment=data.auto_augment,
        color_jitter=data.color_jitter,
        re_prob=data.reprob,
        re_mode="pixel",  # timm's training default: erase with noise, not a constant
        interpolation=data.interpolation,
        mean=config["mean"],
        std=config["std"],
    )


def val_transform(data: FolderData, input_size: tuple[int, int, int], config: dict) -> Any:
    """timm's evaluation pipeline: resize, centre crop at the model's crop ratio, normalise."""
    return create_transform(
        input_size,
        is_training=False,
        interpolation=data.interpolation,
        mean=config["mean"],
        std=config["std"],
        crop_pct=config["crop_pct"],
        crop_mode=config["crop_mode"],
    )


def build_mixup(data: FolderData, num_classes: int, label_smoothing: float, batch_size: int) -> Mixup | None:
    """timm's Mixup/CutMix on whole batches, or None when both alphas are 0.

    Raises:
        SurgeryError: an odd per-process batch, which timm's batch mixing cannot pair up.
    """
    if data.mixup == 0 and data.cutmix == 0:
        return None
    if batch_size % 2:
        raise SurgeryError(f"data.mixup/cutmix: need an even per-process batch size, got {batch_size}")
    return Mixup(
        mixup_alpha=data.mixup, cutmix_alpha=data.cutmix, label_smoothing=label_smoothing, num_classes=num_classes
    )


def _dataset(folder: Path, class_map: dict[str, int] | None) -> ImageDataset:
    try:
        return create_dataset("", root=str(folder), search_split=False, class_map=class_map)
    except RuntimeError as error:  # timm's reader finds no images
        raise SurgeryError(f"data.root: {error}") from error


def _split_folder(data: FolderData, split: str) -> Path:
    """`root/split`; names the first missing folder rather than letting timm fall back to `root`."""
    for path in (data.root, data.root / split):
        if not path.is_dir():
            raise SurgeryError(
                f"data.root: {path} does not exist; expected an ImageFolder/ImageNet layout "
                f"root/{data.train_split}/<class>/<images>"
            )
    return data.root / split


def folder_class_count(data: FolderData) -> int:
    """The recipe's `data.num_classes`, else the number of class folders in the training split."""
    classes = [path for path in _split_folder(data, data.train_split).iterdir() if path.is_dir()]
    return _num_classes(data, len(classes))


def folder_train_size(data: FolderData) -> int:
    """Images in the training split, as timm's reader finds them."""
    return len(_dataset(_split_folder(data, data.train_split), class_map=None))


def _num_classes(data: FolderData, found: int) -> int:
    if data.num_classes is None:
        return found
    if data.num_classes < found:
        raise SurgeryError(f"data.num_classes: {data.num_classes} is fewer than the {found} class folders found")
    return data.num_classes


def check_folders(data: FolderData) -> None:
    """Fail before a run starts, not hours into it, when a split folder is missing."""
    for split in (data.train_split, data.val_split):
        _split_folder(data, split)
