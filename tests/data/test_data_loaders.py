"""Data for the engine: fixed stratified digits, learnable synthetic data, disjoint shards, ImageFolder via timm."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from sklearn.datasets import load_digits
from timm.data import Mixup

from surgery.data import build_loaders, build_val_loader, set_epoch
from surgery.data.digits import split_indices
from surgery.errors import SurgeryError
from surgery.recipe import DigitsData, FolderData, SyntheticData


def tensors(dataset: torch.utils.data.TensorDataset) -> tuple[torch.Tensor, torch.Tensor]:
    return dataset.tensors[0], dataset.tensors[1]


def test_digits_split_is_stratified_fixed_and_complete() -> None:
    labels = load_digits().target
    train, val = split_indices(labels, 0.2, split_seed=0)
    again, _ = split_indices(labels, 0.2, split_seed=0)
    other, _ = split_indices(labels, 0.2, split_seed=1)
    assert np.array_equal(train, again) and not np.array_equal(train, other)
    assert len(train) + len(val) == 1797 and not set(train) & set(val)
    shares = {k: v / len(val) for k, v in Counter(labels[val]).items()}
    overall = {k: v / len(labels) for k, v in Counter(labels).items()}
    assert all(abs(shares[k] - overall[k]) < 0.01 for k in overall)


def test_digits_are_normalised_with_train_stats_and_resized() -> None:
    loaders = build_loaders(DigitsData(), (3, 16, 16), batch_size=32)
    x_train, y_train = tensors(loaders.train.dataset)
    x_val, _ = tensors(loaders.val.dataset)
    assert x_train.shape == (1437, 3, 16, 16) and x_val.shape == (360, 3, 16, 16)
    assert abs(x_train.mean().item()) < 1e-4 and abs(x_train.std().item() - 1) < 1e-3
    assert torch.equal(x_train[:, 0], x_train[:, 2])  # grey repeated into every channel
    assert y_train.dtype == torch.int64 and loaders.num_classes == 10 and loaders.mixup is None


def test_digits_keep_native_size() -> None:
    images, labels = next(iter(build_loaders(DigitsData(), (1, 8, 8), batch_size=16).val))
    assert images.shape == (16, 1, 8, 8) and images.dtype == torch.float32 and labels.shape == (16,)


def test_synthetic_is_deterministic_per_seed() -> None:
    data = SyntheticData(num_samples=32, num_classes=3)
    a, b, c = (tensors(build_loaders(data, (3, 8, 8), 8, seed=s).train.dataset) for s in (0, 0, 1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[0], c[0])


def test_synthetic_is_learnable_by_a_linear_model() -> None:
    loaders = build_loaders(SyntheticData(num_samples=512, num_classes=4), (3, 8, 8), batch_size=64)
    (x, y), (x_val, y_val) = tensors(loaders.train.dataset), tensors(loaders.val.dataset)
    # Least squares onto one-hot labels: a linear fit in one call, no training loop to wait for.
    weights = torch.linalg.lstsq(x.flatten(1), torch.nn.functional.one_hot(y, 4).float()).solution
    accuracy = ((x_val.flatten(1) @ weights).argmax(1) == y_val).float().mean().item()
    assert accuracy > 0.6  # chance is 0.25


def test_single_process_shuffle_is_reproducible_and_reshuffles_per_epoch() -> None:
    data = SyntheticData(num_samples=64, num_classes=2)

    def order(epoch: int) -> list[int]:
        loader = build_loaders(data, (1, 4, 4), 16, seed=3).train
        set_epoch(loader, epoch)
        return list(loader.sampler)

    assert order(0) == order(0) and order(0) != order(1) and sorted(order(0)) == list(range(64))


@pytest.mark.parametrize("split", ["train", "val"])
def test_distributed_shards_are_disjoint_and_cover(split: str) -> None:
    shards = [
        set(getattr(build_loaders(DigitsData(), (1, 8, 8), 32, world_size=2, rank=r), split).sampler)
        for r in (0, 1)
    ]
    size = 1437 if split == "train" else 360
    assert not shards[0] & shards[1]
    assert len(shards[0] | shards[1]) == size - size % 2  # training drops the odd image out


def test_batch_must_divide_over_processes() -> None:
    with pytest.raises(SurgeryError, match="does not divide evenly over 2"):
        build_loaders(DigitsData(), (1, 8, 8), batch_size=33, world_size=2)


def test_training_shard_smaller_than_a_batch_is_an_error() -> None:
    with pytest.raises(SurgeryError, match="fewer than one batch"):
        build_loaders(SyntheticData(num_samples=8, num_classes=2), (1, 4, 4), batch_size=16)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """root/{train,validation}/{cat,dog}/*.png: 2 classes x 3 random 16x16 RGB images per split."""
    rng = np.random.default_rng(0)
    for split in ("train", "validation"):
        for name in ("cat", "dog"):
            (tmp_path / split / name).mkdir(parents=True)
            for i in range(3):
                pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(tmp_path / split / name / f"{i}.png")
    return tmp_path


def test_folder_batches_through_timm_transforms(image_folder: Path) -> None:
    data = FolderData(root=image_folder, workers=0, mixup=0, cutmix=0)
    loaders = build_loaders(data, (3, 16, 16), batch_size=4)
    images, labels = next(iter(loaders.train))
    val_images, val_labels = next(iter(loaders.val))
    assert images.shape == (4, 3, 16, 16) and images.dtype == torch.float32
    assert labels.dtype == torch.int64 and set(labels.tolist()) <= {0, 1}
    assert val_labels.tolist() == [0, 0, 0, 1, 1, 1][:4] and val_images.shape == (4, 3, 16, 16)
    assert loaders.num_classes == 2 and loaders.mixup is None


def test_folder_validation_follows_the_evaluated_models_preprocessing(tmp_path: Path) -> None:
    for split in ("train", "validation"):
        (tmp_path / split / "white").mkdir(parents=True)
        Image.fromarray(np.full((16, 16, 3), 255, dtype=np.uint8)).save(tmp_path / split / "white" / "0.png")
    data = FolderData(root=tmp_path, workers=0)
    vit = timm.create_model("vit_tiny_patch16_224", img_size=16, patch_size=8, depth=1)  # mean and std 0.5
    images, _ = next(iter(build_val_loader(data, (3, 16, 16), 1, model=vit)))
    torch.testing.assert_close(images, torch.ones(1, 3, 16, 16))  # (1 - 0.5) / 0.5
    imagenet, _ = next(iter(build_val_loader(data, (3, 16, 16), 1, model=None)))
    torch.testing.assert_close(imagenet[0, 0], torch.full((16, 16), (1 - 0.485) / 0.229))


def test_folder_mixup_and_recipe_num_classes(image_folder: Path) -> None:
    data = FolderData(root=image_folder, workers=0, num_classes=5)
    loaders = build_loaders(data, (3, 16, 16), batch_size=4, label_smoothing=0.1)
    assert isinstance(loaders.mixup, Mixup) and loaders.num_classes == 5
    images, labels = loaders.mixup(*next(iter(loaders.train)))
    assert labels.shape == (4, 5) and torch.allclose(labels.sum(1), torch.ones(4))


def test_folder_mixup_needs_an_even_batch(image_folder: Path) -> None:
    with pytest.raises(SurgeryError, match="even per-process batch"):
        build_loaders(FolderData(root=image_folder, workers=0), (3, 16, 16), batch_size=3)


def test_folder_missing_root_and_split_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(SurgeryError, match=f"data.root: {missing} does not exist; .*root/train/<class>"):
        build_loaders(FolderData(root=missing), (3, 16, 16), batch_size=4)
    (tmp_path / "train" / "cat").mkdir(parents=True)
    with pytest.raises(SurgeryError, match=f"{tmp_path / 'validation'} does not exist"):
        build_loaders(FolderData(root=tmp_path), (3, 16, 16), batch_size=4)
    (tmp_path / "validation" / "cat").mkdir(parents=True)
    with pytest.raises(SurgeryError, match="Found 0 images"):
        build_loaders(FolderData(root=tmp_path), (3, 16, 16), batch_size=4)


def test_folder_repeated_augmentation_draws_each_image_repeatedly(image_folder: Path) -> None:
    data = FolderData(root=image_folder, workers=0, mixup=0, cutmix=0, repeated_aug=3)

    def order(epoch: int, world_size: int = 1, rank: int = 0) -> list[int]:
        loader = build_loaders(data, (3, 16, 16), 2 * world_size, seed=3, world_size=world_size, rank=rank).train
        set_epoch(loader, epoch)
        return list(loader.sampler)

    single = order(0)
    assert len(single) == 6 and single == order(0)  # as long as one pass over the 6 images, reproducible
    assert [single[i : i + 3] for i in (0, 3)] == [[single[0]] * 3, [single[3]] * 3]  # 2 images, 3 copies each
    first, second = order(0, world_size=2, rank=0), order(0, world_size=2, rank=1)
    dealt = [index for pair in zip(first, second) for index in pair]
    assert dealt == single  # the copies are dealt in turn to the processes


def test_folder_repeated_augmentation_shuffles_by_seed_plus_epoch(image_folder: Path) -> None:
    data = FolderData(root=image_folder, workers=0, mixup=0, cutmix=0, repeated_aug=2)

    def order(seed: int, epoch: int) -> list[int]:
        loader = build_loaders(data, (3, 16, 16), 2, seed=seed).train
        set_epoch(loader, epoch)
        return list(loader.sampler)

    assert order(2, 3) == order(5, 0) and order(0, 0) != order(1, 0)  # as DistributedSampler: seed + epoch
    assert sorted(Counter(order(0, 0)).values()) == [2, 2, 2]
