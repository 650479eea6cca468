"""The embedded digits: a subset of the classes, relabelled in the order the recipe writes them."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from sklearn.datasets import load_digits

from surgery.data import build_loaders, build_val_loader, class_count, train_size
from surgery.recipe import DigitsData


def test_a_class_subset_keeps_those_digits_labelled_in_their_written_order() -> None:
    data = DigitsData(classes=[7, 3])
    per_digit = torch.as_tensor(load_digits().target).bincount()
    splits = [build_val_loader(data, (1, 8, 8), 64, model=None, split=split) for split in ("train", "val")]
    labels = torch.cat([y for loader in splits for _, y in loader])
    assert class_count(data) == build_loaders(data, (1, 8, 8), batch_size=16).num_classes == 2
    assert labels.bincount().tolist() == [per_digit[7], per_digit[3]]  # 179 sevens are label 0, 183 threes label 1
    assert train_size(data) == len(splits[0].dataset)


@pytest.mark.parametrize("classes", [[1, 1], [3, 10], [4]])
def test_a_class_subset_must_be_two_or_more_distinct_digits(classes: list[int]) -> None:
    with pytest.raises(ValidationError, match="classes"):
        DigitsData(classes=classes)
