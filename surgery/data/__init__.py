"""Training and evaluation data for the stage engine: digits, synthetic or an image folder.

Example:
    >>> from surgery.data import build_loaders, set_epoch
    >>> from surgery.recipe import SyntheticData
    >>> loaders = build_loaders(SyntheticData(num_samples=64, num_classes=4), (3, 16, 16), batch_size=16)
    >>> set_epoch(loaders.train, 0)
    >>> tuple(next(iter(loaders.train))[0].shape)
    (16, 3, 16, 16)
"""

from surgery.data.folder import check_folders
from surgery.data.loaders import Loaders, build_loaders, build_val_loader, class_count, per_rank_batch, set_epoch, train_size

__all__ = ["Loaders", "build_loaders", "build_val_loader", "check_folders", "class_count", "per_rank_batch", "set_epoch", "train_size"]
