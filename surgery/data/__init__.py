"""Training and evaluation data for the stage engine: digits, synthetic or an image folder.

Example:
    >>> from surgery.data import build_loaders, set_epoch
    >>> from surgery.recipe import SyntheticData
    >>> loaders = build_loaders(SyntheticData(num_samples=64, num_classes=4), (3, 16, 16), batch_size=16)
    >>> set_epoch(loaders.train, 0)
    >>> tuple(next(iter(loaders.train))[0].shape)
    (16, 3, 16, 16)
"""

from surgery.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Loaders": "surgery.data.loaders",
        "build_loaders": "surgery.data.loaders",
        "build_val_loader": "surgery.data.loaders",
        "check_folders": "surgery.data.folder",
        "class_count": "surgery.data.loaders",
        "per_rank_batch": "surgery.data.loaders",
        "set_epoch": "surgery.data.loaders",
        "train_size": "surgery.data.loaders",
    },
)
__all__ = ["Loaders", "build_loaders", "build_val_loader", "check_folders", "class_count", "per_rank_batch", "set_epoch", "train_size"]
