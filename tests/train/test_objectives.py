"""The distillation objective's choices do what the recipe says (paper eq. 3-4), and the Group-HS term joins it or the
prune stage's task loss alike (§3.3)."""

from __future__ import annotations

import copy

import pytest
import timm
import torch
import torch.nn.functional as F

from far_modules import hoyer_penalty, prunable_modules
from surgery.recipe import DistillStage, PruneStage, Recipe
from surgery.rewrite.plan import plan
from surgery.rewrite.student import build_student
from surgery.train.objectives import distill_objective, hoyer_regularised, prune_objective, similarity_loss

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


def with_bilstms(teacher: torch.nn.Module) -> torch.nn.Module:
    """The teacher with each attention replaced by a multi-head BiLSTM, as a run's rewrite builds it."""
    recipe = Recipe.model_validate({"name": "t", "model": {"name": "vit_tiny_patch16_224"}, "rewrites": [{"substitute": "bilstm"}]})
    return build_student(teacher, plan(recipe, teacher))


def hoyer_sum(student: torch.nn.Module) -> torch.Tensor:
    return sum(hoyer_penalty(module) for module in prunable_modules(student).values())


@pytest.mark.parametrize("mode", ["free_running", "teacher_forced"])
def test_hoyer_term_joins_block_distillation_in_either_mode(teacher, mode):
    student, images, labels = with_bilstms(teacher), torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    plain = distill_objective(teacher, DistillStage(epochs=1, lr=1e-3, mode=mode), BLOCKS, SITES)
    joint = hoyer_regularised(plain, list(prunable_modules(student).values()), 0.1)(student, images, labels)
    assert joint.loss.item() == pytest.approx(plain(student, images, labels).loss.item() + 0.1 * hoyer_sum(student).item(), rel=1e-6)
    assert joint.logs["hoyer"] == pytest.approx(hoyer_sum(student).item()) and {"sim", "ce"} <= joint.logs.keys()
    assert joint.logs["loss"] == pytest.approx(joint.loss.item())
    joint.loss.backward()
    assert all(rnn.weight_hh_l0.grad.abs().sum() > 0 for module in prunable_modules(student).values() for rnn in module.forward_rnns)


def test_prune_objective_is_the_task_loss_plus_the_weighted_hoyer_sum(teacher):
    student, images, labels = with_bilstms(teacher), torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    prune = PruneStage(epochs=1, lr=1e-3, hoyer_weight=0.5, threshold=0.1)
    result = prune_objective(prune, list(prunable_modules(student).values()), teacher)(student, images, labels)
    expected = F.cross_entropy(student(images), labels) + 0.5 * hoyer_sum(student)
    assert result.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert result.logs["ce"] == pytest.approx(F.cross_entropy(student(images), labels).item(), rel=1e-6)
