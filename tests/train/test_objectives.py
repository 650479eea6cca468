"""The distillation objective's choices do what the recipe says (paper eq. 3-4)."""

from __future__ import annotations

import copy

import pytest
import timm
import torch

from surgery.recipe import DistillStage
from surgery.train.objectives import distill_objective, similarity_loss

BLOCKS, SITES = ["blocks.0", "blocks.1"], ["blocks.0.attn", "blocks.1.attn"]


def stage(**options) -> DistillStage:
    return DistillStage(epochs=1, lr=1e-3, ce_weight=0.0, **options)


@pytest.fixture
def teacher() -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", img_size=8, patch_size=4, in_chans=1, num_classes=3, embed_dim=8, depth=2, num_heads=2).eval()


def perturbed(model: torch.nn.Module, block: str) -> torch.nn.Module:
    student = copy.deepcopy(model)
    with torch.no_grad():
        student.get_submodule(f"{block}.mlp.fc2").weight.add_(0.5)
    return student


def similarity(teacher, student, **options) -> float:
    images, labels = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 2, 0])
    return distill_objective(teacher, stage(**options), BLOCKS, SITES)(student, images, labels).logs["sim"]


def test_similarity_measures():
    a = torch.randn(2, 5, 8)
    assert similarity_loss(a, a + 1, stage(similarity="mse")).item() == pytest.approx(1.0)
    assert similarity_loss(a, a, stage(similarity="cosine")).item() == pytest.approx(0.0, abs=1e-6)
    assert similarity_loss(a, -a, stage(similarity="cosine", similarity_axis="token")).item() == pytest.approx(2.0)
    assert similarity_loss(a, 3 * a, stage(similarity="cosine", similarity_axis="flat")).item() == pytest.approx(0.0, abs=1e-6)


def test_identical_student_has_zero_block_loss(teacher):
    assert similarity(teacher, copy.deepcopy(teacher)) == pytest.approx(0.0, abs=1e-12)


def test_teacher_forcing_confines_an_error_to_its_own_block(teacher):
    student = perturbed(teacher, "blocks.0")
    forced = similarity(teacher, student, mode="teacher_forced")
    free = similarity(teacher, student, mode="free_running")
    assert 0 < forced < free  # free running: block 1 also sees block 0's error


def test_an_error_in_the_last_block_costs_the_same_either_way(teacher):
    student = perturbed(teacher, "blocks.1")
    assert similarity(teacher, student, mode="teacher_forced") == pytest.approx(similarity(teacher, student, mode="free_running"))


def test_reduce_mean_is_sum_over_blocks(teacher):
    student = perturbed(teacher, "blocks.0")
    assert similarity(teacher, student, reduce="sum") == pytest.approx(2 * similarity(teacher, student, reduce="mean"))


def test_site_targets_ignore_the_mlp(teacher):
    assert similarity(teacher, perturbed(teacher, "blocks.1"), at="site") == pytest.approx(0.0, abs=1e-12)
    assert similarity(teacher, perturbed(teacher, "blocks.1"), at="block") > 0
