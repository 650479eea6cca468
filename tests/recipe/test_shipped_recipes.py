"""The shipped FAR recipes: other backbones train exactly as deit_far.yaml, as their headers say."""

from __future__ import annotations

from pathlib import Path

import pytest

from surgery.recipe import load_recipe

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
SHARED = {"seed", "data", "stages", "export", "hardware"}


@pytest.mark.parametrize("name", ["swin_far", "eva_far", "pvt_v2_far"])
def test_other_backbones_share_deit_fars_schedule(name: str) -> None:
    deit, other = load_recipe(RECIPES / "deit_far.yaml"), load_recipe(RECIPES / f"{name}.yaml")
    assert other.model_dump(include=SHARED) == deit.model_dump(include=SHARED)
    assert other.model.name != deit.model.name


def test_deit_far_distils_at_the_official_rate_per_512_images() -> None:
    distill = load_recipe(RECIPES / "deit_far.yaml").stages[0]
    assert (distill.lr, distill.lr_base_batch, distill.batch_size, distill.peak_lr) == (5e-4, 512, 256, 2.5e-4)
