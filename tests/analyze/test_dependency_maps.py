"""Dependency maps on modules whose maps are known: token shifts, fixed attention, one-directional LSTMs."""

from __future__ import annotations

import math

import pytest
import timm
import torch
from torch import nn

from far_modules import MultiHeadBiLSTM
from surgery import Recipe, build_student, plan
from surgery.analyze.agreement import BlockMaps, compare, rank_correlation
from surgery.analyze.attribution import cumulative_attribution
from surgery.analyze.dependency import head_saliency, normalise_rows, saliency
from surgery.analyze.map_figures import plot_heads, plot_overview
from surgery.analyze.maps import measure_maps, token_sites
from surgery.detect.sparsity import attention_sparsity
from tests.strategies import single_thread  # noqa: F401 - a fixture, used through pytestmark
from tests.tiny import KWARGS, MODEL

pytestmark = pytest.mark.usefixtures("single_thread")


class Shift(nn.Module):
    """Output token i is input token i - 1 (wrapping): a map with one known entry per row."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.roll(1, dims=1)


class FixedAttention(nn.Module):
    """softmax(scores) @ x with fixed scores: its attention, and so its dependency map, is softmax(scores)."""

    def __init__(self, scores: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("scores", scores)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scores[None].softmax(-1) @ x  # (1, N, N) @ (B, N, C): one head, as attention_sparsity reads it


class Block(nn.Module):
    def __init__(self, attn: nn.Module) -> None:
        super().__init__()
        self.attn = attn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x)


def bilstm(tokens_dim: int = 8, heads: int = 2) -> MultiHeadBiLSTM:
    torch.manual_seed(0)
    return MultiHeadBiLSTM(tokens_dim, ((3, 5),) * heads, tokens_dim // heads).eval()


def test_saliency_of_a_token_wise_module_is_the_identity_and_of_a_shift_is_the_shift():
    x = [torch.randn(2, 5, 3)]
    torch.testing.assert_close(saliency(nn.Linear(3, 3), x), torch.eye(5))
    torch.testing.assert_close(saliency(Shift(), x), torch.eye(5).roll(-1, dims=1))  # row i reads column i - 1


def test_forward_directions_are_causal_and_backward_ones_anticausal():
    module, x = bilstm(), [torch.randn(3, 6, 8), torch.randn(2, 6, 8)]
    maps = head_saliency(module, module, x)
    assert set(maps) == {(h, d) for h in range(2) for d in ("forward", "backward")}
    for (_, direction), matrix in maps.items():
        future = matrix.triu(1) if direction == "forward" else matrix.tril(-1)
        assert future.abs().max() == 0, direction
        assert matrix.diagonal().min() > 0  # each token reads itself
        torch.testing.assert_close(matrix.sum(-1), torch.ones(6))


def test_a_bilstm_whose_backward_directions_are_cut_reads_only_the_past():
    module = bilstm()
    columns = torch.cat([torch.arange(3, 8), torch.arange(11, 16)])  # out_proj columns of each head's backward LSTM
    with torch.no_grad():
        module.out_proj.weight[:, columns] = 0
    causal = saliency(module, [torch.randn(4, 7, 8)])
    assert causal.triu(1).abs().max() == 0
    assert saliency(bilstm(), [torch.randn(4, 7, 8)]).triu(1).abs().max() > 0  # with them it reads the future too


def test_substitutes_without_heads_give_no_head_maps_and_a_site_running_one_twice_is_refused():
    assert head_saliency(nn.Linear(8, 8), nn.Linear(8, 8), [torch.randn(1, 4, 8)]) == {}
    module = bilstm()
    with pytest.raises(ValueError, match="ran 2 times"):
        head_saliency(lambda t: module(t) + module(t.flip(1)).flip(1), module, [torch.randn(1, 4, 8)])


def test_cumulative_attribution_composes_the_blocks_after_the_embedding():
    model = nn.Sequential(nn.Linear(3, 4), Block(Shift()), Block(Shift()), Block(Shift()))  # the embedding mixes channels only
    maps = cumulative_attribution(model, ["1", "2", "3"], [torch.randn(2, 6, 3)])
    for depth, block in enumerate(["1", "2", "3"], start=1):
        torch.testing.assert_close(maps[block], torch.eye(6).roll(-depth, dims=1))


def test_fixed_attention_gives_its_softmax_as_attention_and_their_product_as_cumulative_attribution():
    torch.manual_seed(0)
    first, second = torch.randn(5, 5) * 3, torch.randn(5, 5) * 3
    model = nn.Sequential(Block(FixedAttention(first)), Block(FixedAttention(second)))
    x = [torch.randn(2, 5, 4)]
    (attention,) = attention_sparsity(model, ["0.attn"], x)
    torch.testing.assert_close(attention.attention[0], first.softmax(-1))
    maps = cumulative_attribution(model, ["0", "1"], x)
    torch.testing.assert_close(maps["0"], first.softmax(-1))
    torch.testing.assert_close(maps["1"], normalise_rows(second.softmax(-1) @ first.softmax(-1)))


def test_a_block_whose_output_is_not_its_tokens_is_refused():
    model = nn.Sequential(Block(Shift()), Block(nn.Flatten(1)))
    with pytest.raises(ValueError, match="not \\(B, N, C\\) tokens"):
        cumulative_attribution(model, ["0", "1"], [torch.randn(1, 4, 3)])


def test_rank_correlation_is_one_for_the_same_order_and_minus_one_for_the_reverse():
    a = torch.rand(6, 6)
    assert rank_correlation(a, a) == pytest.approx(1.0)
    assert rank_correlation(a, a.exp() * 10) == pytest.approx(1.0)  # ranks only: any increasing map of a
    assert rank_correlation(a, -a) == pytest.approx(-1.0)
    assert math.isnan(rank_correlation(a, torch.ones(6, 6)))
    with pytest.raises(ValueError, match="cannot be compared"):
        rank_correlation(a, a[:5])


def block_maps(teacher_heads: torch.Tensor, student_heads: dict, student: torch.Tensor) -> BlockMaps:
    attribution = normalise_rows(torch.rand(5, 5))
    return BlockMaps("blocks.0", "blocks.0.attn", teacher_heads, student, student_heads, attribution, attribution, prefix=1)


def test_a_student_that_copies_the_teacher_agrees_everywhere_and_heads_are_compared_only_when_they_correspond():
    teacher = normalise_rows(torch.rand(2, 5, 5))
    copies = {(h, d): teacher[h] for h in range(2) for d in ("forward", "backward")}
    agreement = compare(block_maps(teacher, copies, teacher.mean(0)))
    assert agreement.attention == agreement.attribution == agreement.attribution_off_diagonal == pytest.approx(1.0)
    assert [set(h) for h in agreement.heads] == [{"forward", "backward", "both"}] * 2
    assert all(v == pytest.approx(1.0) for h in agreement.heads for v in h.values())
    one_head = {(0, d): teacher[0] for d in ("forward", "backward")}
    assert compare(block_maps(teacher, one_head, teacher.mean(0))).heads == []


def test_the_off_diagonal_correlation_ignores_what_each_token_takes_from_itself():
    teacher = normalise_rows(torch.rand(1, 5, 5))
    student = teacher[0] + torch.eye(5) * torch.arange(5.0)  # different diagonal, same dependencies between tokens
    maps = BlockMaps("blocks.0", "blocks.0.attn", teacher, student, {}, teacher[0], student, prefix=1)
    agreement = compare(maps)
    assert agreement.attribution < 0.99 and agreement.attribution_off_diagonal == pytest.approx(1.0)


def test_a_constant_student_map_has_no_correlation_and_json_says_null():
    teacher = normalise_rows(torch.rand(2, 5, 5))
    agreement = compare(block_maps(teacher, {}, torch.full((5, 5), 0.2)))
    assert math.isnan(agreement.attention)
    assert agreement.to_json()["attention"] is None and agreement.to_json()["heads"] == []


@pytest.fixture(scope="module")
def tiny_pair() -> tuple[nn.Module, nn.Module]:
    """A two-block, two-head ViT and its BiLSTM student, random weights."""
    recipe = Recipe.model_validate({"name": "maps", "model": {"name": MODEL, "kwargs": KWARGS}, "rewrites": [{"select": {"path": "blocks.*.attn"}}]})
    torch.manual_seed(0)
    teacher = timm.create_model(MODEL, **KWARGS).eval()
    return teacher, build_student(teacher, plan(recipe, teacher)).eval()


def test_a_vit_and_its_student_give_every_map_per_block_head_and_direction(tiny_pair, tmp_path):
    teacher, student = tiny_pair
    adapters = token_sites(student)
    maps = measure_maps(teacher, student, adapters, [torch.randn(2, 3, 32, 32)])
    assert [(m.block, m.site) for m in maps] == [("blocks.0", "blocks.0.attn"), ("blocks.1", "blocks.1.attn")]
    for m in maps:
        assert m.teacher_heads.shape == (2, 17, 17) and m.prefix == 1
        assert len(m.student_heads) == 4 and m.student_heads[(0, "forward")].triu(1).abs().max() == 0
        for matrix in (m.student, m.teacher_attribution, m.student_attribution, *m.student_heads.values()):
            torch.testing.assert_close(matrix.sum(-1), torch.ones(17))
    agreements = [compare(m) for m in maps]
    assert all(len(a.heads) == 2 and -1 <= a.attribution <= 1 for a in agreements)
    overview = plot_overview(maps, agreements, tmp_path / "overview.png")
    heads = plot_heads(maps[0], agreements[0], tmp_path / "blocks.0.attn.png")
    assert overview.stat().st_size > 0 and heads.stat().st_size > 0
