"""Losses and metrics of a text encoder: padding counts nowhere, the embedding is judged against the teacher's."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from surgery.recipe import DistillStage
from surgery.train.evaluation import embedding_cosine, neighbour_overlap, probe_accuracy
from surgery.train.objectives import TaskLoss, similarity_loss


def _padded_pair(seed: int, batch: int = 3, tokens: int = 7, width: int = 5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    student, teacher = torch.randn(2, batch, tokens, width, generator=generator)
    lengths = torch.randint(1, tokens + 1, (batch,), generator=generator)
    return student, teacher, torch.arange(tokens) < lengths[:, None]


@pytest.mark.parametrize(
    "stage",
    [
        DistillStage(epochs=1, lr=1e-3, similarity="mse"),
        DistillStage(epochs=1, lr=1e-3, similarity="cosine", similarity_axis="channel"),
        DistillStage(epochs=1, lr=1e-3, similarity="cosine", similarity_axis="token"),
        DistillStage(epochs=1, lr=1e-3, similarity="cosine", similarity_axis="flat"),
    ],
    ids=["mse", "cosine-channel", "cosine-token", "cosine-flat"],
)
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_block_similarity_ignores_whatever_sits_at_padded_positions(stage: DistillStage, seed: int) -> None:
    student, teacher, mask = _padded_pair(seed)
    noise = torch.randn_like(student) * 100 * (~mask).unsqueeze(-1)
    before = similarity_loss(student, teacher, stage, mask)
    assert torch.allclose(similarity_loss(student + noise, teacher - noise, stage, mask), before, atol=1e-5)
    assert before > 0 and similarity_loss(teacher, teacher, stage, mask) < 1e-5


def test_masked_mse_is_the_mean_over_real_tokens_only() -> None:
    student, teacher, mask = _padded_pair(1)
    stage = DistillStage(epochs=1, lr=1e-3, similarity="mse")
    expected = ((student - teacher)[mask] ** 2).mean()
    assert torch.allclose(similarity_loss(student, teacher, stage, mask), expected)


def test_the_text_task_loss_is_one_minus_the_cosine_to_the_teachers_embedding() -> None:
    teacher = torch.randn(4, 6)
    loss, logs = TaskLoss(uses_teacher=True)(2.5 * teacher, teacher, torch.zeros(4, dtype=torch.long))
    assert loss.abs() < 1e-6 and logs["emb"] == pytest.approx(0, abs=1e-6)
    loss, _ = TaskLoss(uses_teacher=True)(-teacher, teacher, torch.zeros(4, dtype=torch.long))
    assert loss == pytest.approx(2.0)


def test_embedding_metrics_separate_a_faithful_student_from_a_scrambled_one() -> None:
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 16, generator=generator) * 3
    labels = torch.arange(60) % 3
    teacher = centres[labels] + torch.randn(60, 16, generator=generator)
    faithful = teacher * 2 + 0.01 * torch.randn(60, 16, generator=generator)
    scrambled = teacher[torch.randperm(60, generator=generator)]
    assert embedding_cosine(faithful, teacher) > 0.99 > embedding_cosine(scrambled, teacher)
    assert neighbour_overlap(faithful, teacher) > 0.9 > neighbour_overlap(scrambled, teacher)
    split = (teacher[:45], labels[:45]), (teacher[45:], labels[45:])
    assert probe_accuracy(*split) > 90
    assert probe_accuracy((scrambled[:45], labels[:45]), (scrambled[45:], labels[45:])) < 80
