"""Workload extraction from fx graphs: op kinds, shapes, the activation rule, dependencies, blocks."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from far_modules import MultiHeadBiLSTM, SiteSpec
from hwmodel import Gemm, Nonlinear, Product, Recurrence, block_of, extract_workload


def _extract(module: nn.Module, *inputs: torch.Tensor, leaves: tuple[type, ...] = ()):
    class Tracer(fx.Tracer):
        def is_leaf_module(self, m: nn.Module, name: str) -> bool:
            return isinstance(m, leaves) or super().is_leaf_module(m, name)

    tracer = Tracer()
    graph = tracer.trace(module)
    return extract_workload(fx.GraphModule(tracer.root, graph), *inputs)


def test_linear_and_gelu_chain():
    work = _extract(nn.Sequential(nn.Linear(8, 4), nn.GELU()), torch.randn(2, 5, 8))
    gemm, gelu = work.ops
    assert (gemm.rows, gemm.cols, gemm.vectors) == (8, 4, 10)
    assert isinstance(gelu, Nonlinear) and gelu.fn == "gelu" and gelu.elements == 40 and gelu.deps == (0,)
    assert gemm.bytes == (80 + 40 + 32) * 4


def test_a_prepropagated_graph_needs_no_input():
    graph = fx.symbolic_trace(nn.Linear(8, 4))
    with pytest.raises(ValueError, match="ShapeProp"):
        extract_workload(graph)
    ShapeProp(graph).propagate(torch.randn(3, 8))
    assert extract_workload(graph).ops[0].vectors == 3


@pytest.mark.parametrize("wrap", [nn.Sequential, lambda conv: conv], ids=["module", "functional"])
@pytest.mark.parametrize(("groups", "rows", "cols"), [(1, 3 * 4 * 4, 8), (2, 2 * 4 * 4, 4)])
def test_convolution_is_an_im2col_gemm(wrap, groups, rows, cols):
    conv = nn.Conv2d(4 if groups == 2 else 3, 8, kernel_size=4, stride=4, groups=groups)
    (gemm,) = _extract(wrap(conv), torch.randn(2, conv.in_channels, 16, 16)).ops
    assert (gemm.rows, gemm.cols, gemm.vectors, gemm.groups) == (rows, cols, 2 * 4 * 4, groups)


def test_lstm_leaf_is_one_recurrence_per_layer_and_direction():
    lstm = nn.LSTM(16, 32, num_layers=2, bidirectional=True, batch_first=True)
    ops = _extract(nn.Sequential(lstm), torch.randn(3, 7, 16)).ops
    assert [type(op) for op in ops] == [Recurrence] * 4
    assert [(op.input_size, op.hidden_size, op.steps, op.batch) for op in ops] == [(16, 32, 7, 3)] * 2 + [(64, 32, 7, 3)] * 2
    assert ops[0].deps == ops[1].deps == () and ops[2].deps == ops[3].deps == (0, 1)


class _Mixer(nn.Module):
    """x @ W (weight-stationary), x @ x^T (activation product), x @ ones(d, d) built from a shape read."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(8, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        projected = x @ self.weight
        scores = projected @ x.transpose(-1, -2)
        ones = torch.ones(x.shape[-1:] + x.size()[-1:])
        return scores @ x + (x @ ones).sum()


def test_only_products_of_two_activations_count():
    kinds = [type(op) for op in _extract(_Mixer(), torch.randn(2, 5, 8)).ops if isinstance(op, (Gemm, Product))]
    assert kinds == [Gemm, Product, Product, Gemm]


def test_einsum_between_activations_is_a_product():
    class Einsum(nn.Module):
        def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
            return torch.einsum("bhid,bhjd->bhij", q, k)

    (product,) = _extract(Einsum(), torch.randn(2, 3, 5, 4), torch.randn(2, 3, 7, 4)).ops
    assert (product.batch, product.m, product.k, product.n) == (6, 5, 4, 7)


def test_doubling_tokens_quadruples_attention_products():
    attention = timm.layers.Attention(dim=32, num_heads=2)
    work = [_extract(attention, torch.randn(1, n, 32)) for n in (10, 20)]
    macs = [sum(op.macs for op in w.of_kind(Product)) for w in work]
    assert macs[1] == 4 * macs[0] == 4 * 2 * (2 * 10 * 10 * 16)


def test_untraceable_leaf_is_recorded_with_its_dependencies():
    module = MultiHeadBiLSTM.from_site(SiteSpec(dim=12, num_heads=3, head_dim=4))
    ops = _extract(nn.Sequential(module), torch.randn(2, 5, 12), leaves=(MultiHeadBiLSTM,)).ops
    assert [type(op).__name__ for op in ops] == ["Nonlinear", "Gemm"] + ["Recurrence"] * 6 + ["Gemm"]
    assert all(op.deps == (1,) for op in ops[2:8])
    assert ops[-1].deps == tuple(range(2, 8)) and ops[-1].rows == 2 * 3 * 4
    assert ops[2].path == "0.forward_rnns.0" and ops[3].path == "0.backward_rnns.0"


def test_the_recorder_works_on_the_meta_device():
    with torch.device("meta"):
        module = nn.Sequential(MultiHeadBiLSTM.from_site(SiteSpec(dim=12, num_heads=3, head_dim=4)))
    work = _extract(module, torch.empty(2, 5, 12, device="meta"), leaves=(MultiHeadBiLSTM,))
    assert len(work.of_kind(Recurrence)) == 6


def test_unpriced_calls_on_activations_are_reported():
    class Cumulative(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cumsum(x, dim=1)

    assert _extract(Cumulative(), torch.randn(2, 3)).skipped == ("cumsum",)


def test_blocks_group_by_numbered_prefix_or_given_paths():
    assert block_of("blocks.11.mlp.fc1") == "blocks.11"
    assert block_of("layers.2.blocks.0.attn") == "layers.2.blocks.0"
    assert block_of("", None) == "(root)"
    assert block_of("stages.1.2.conv", ["stages.1", "stages.1.2"]) == "stages.1.2"
    assert block_of("head", ["stages.1"]) == "head"
