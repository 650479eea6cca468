"""The FAR substitute: shapes, parameter count, direction wiring, and initialisation from an attention."""

from __future__ import annotations

import pytest
import torch
from timm.layers import Attention
from torch import nn

from far_modules import MultiHeadBiLSTM, SiteSpec

DEIT_TINY_SITE = SiteSpec(dim=192, num_heads=3, head_dim=64, seq_len=197)


def columns(module: MultiHeadBiLSTM, direction: int) -> list[int]:
    """Input columns of `out_proj` fed by the forward (0) or backward (1) LSTMs: per head, forward then backward."""
    found, start = [], 0
    for sizes in module.hidden_sizes:
        found += range(start + sum(sizes[:direction]), start + sum(sizes[: direction + 1]))
        start += sum(sizes)
    return found


def changed_tokens(module: nn.Module, x: torch.Tensor, token: int) -> list[int]:
    """Output tokens that move when input `token` is perturbed (not by a constant: LayerNorm would erase it)."""
    bumped = x.clone()
    bumped[:, token] += torch.linspace(-1, 1, x.shape[-1], dtype=x.dtype)
    with torch.no_grad():
        delta = (module(bumped) - module(x)).abs().amax(dim=(0, 2))  # (N,)
    return [t for t in range(x.shape[1]) if delta[t] > 0]


def only_direction(module: MultiHeadBiLSTM, direction: int) -> MultiHeadBiLSTM:
    """Silences the other direction by zeroing its columns of the output projection."""
    with torch.no_grad():
        module.out_proj.weight[:, columns(module, 1 - direction)] = 0
    return module


@pytest.mark.parametrize(("batch", "tokens"), [(1, 1), (2, 7), (3, 16)])
def test_output_has_the_input_shape(batch: int, tokens: int) -> None:
    module = MultiHeadBiLSTM.from_site(SiteSpec(dim=24, num_heads=4, head_dim=6))
    assert module(torch.randn(batch, tokens, 24)).shape == (batch, tokens, 24)


def test_deit_tiny_site_parameter_count_is_analytic() -> None:
    module = MultiHeadBiLSTM.from_site(DEIT_TINY_SITE)
    lstm = 4 * 64 * (64 + 64) + 2 * 4 * 64  # W_ih, W_hh, b_ih, b_hh of one direction of one head
    expected = 2 * 192 + (192 * 192 + 192) + 6 * lstm + (384 * 192 + 192)
    assert sum(p.numel() for p in module.parameters()) == expected == 311_040
    assert (module.num_heads, module.head_dim, module.hidden_sizes) == (3, 64, ((64, 64),) * 3)


def test_options_change_the_layout() -> None:
    module = MultiHeadBiLSTM.from_site(DEIT_TINY_SITE, heads=2, hidden_size=16, bias=False)
    assert (module.num_heads, module.head_dim, module.hidden_sizes) == (2, 96, ((16, 16),) * 2)
    assert module.out_proj.in_features == 64 and module.in_proj.out_features == 192
    assert not any(name.endswith(("bias", "bias_ih_l0", "bias_hh_l0")) for name, _ in module.named_parameters() if "norm" not in name)


def test_uneven_hidden_sizes_per_head_and_direction() -> None:
    module = MultiHeadBiLSTM(dim=6, hidden_sizes=((3, 1), (2, 5)), head_dim=3)
    assert [lstm.hidden_size for lstm in module.forward_rnns] == [3, 2]
    assert [lstm.hidden_size for lstm in module.backward_rnns] == [1, 5]
    assert module.out_proj.in_features == 11
    assert module(torch.randn(2, 4, 6)).shape == (2, 4, 6)


def test_first_token_sees_the_last_one() -> None:
    module = MultiHeadBiLSTM.from_site(SiteSpec(dim=8, num_heads=2, head_dim=4)).double()
    assert 0 in changed_tokens(module, torch.randn(1, 6, 8, dtype=torch.float64), token=5)


@pytest.mark.parametrize("hidden_sizes", [((4, 4), (4, 4)), ((3, 1), (2, 5))])
def test_forward_direction_is_causal_and_backward_reads_reversed(hidden_sizes: tuple[tuple[int, int], ...]) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 6, 8, dtype=torch.float64)
    forward = only_direction(MultiHeadBiLSTM(8, hidden_sizes, 4).double(), 0)
    backward = only_direction(MultiHeadBiLSTM(8, hidden_sizes, 4).double(), 1)
    for token in range(6):
        assert changed_tokens(forward, x, token) == list(range(token, 6))
        assert changed_tokens(backward, x, token) == list(range(token + 1))


def test_sequences_of_a_batch_do_not_mix() -> None:
    module = MultiHeadBiLSTM.from_site(SiteSpec(dim=8, num_heads=2, head_dim=4))
    x = torch.randn(3, 5, 8)
    with torch.no_grad():
        torch.testing.assert_close(module(x)[1:2], module(x[1:2]))


@pytest.fixture
def attention() -> Attention:
    torch.manual_seed(0)
    return Attention(dim=12, num_heads=3, qkv_bias=True).eval()


def test_attention_init_copies_the_value_projection(attention: Attention) -> None:
    module = MultiHeadBiLSTM.from_site(SiteSpec(12, 3, 4), source=attention, init="attention")
    assert torch.equal(module.in_proj.weight, attention.qkv.weight[24:])
    assert torch.equal(module.in_proj.bias, attention.qkv.bias[24:])


def test_attention_init_splits_proj_per_head_and_direction(attention: Attention) -> None:
    module = MultiHeadBiLSTM.from_site(SiteSpec(12, 3, 4), source=attention, init="attention")
    for head in range(3):
        half = attention.proj.weight[:, 4 * head : 4 * head + 4] / 2
        for direction in range(2):
            start = 4 * (2 * head + direction)
            assert torch.equal(module.out_proj.weight[:, start : start + 4], half)
    assert torch.equal(module.out_proj.bias, attention.proj.bias)


def test_attention_init_makes_the_directions_sum_to_proj(attention: Attention) -> None:
    """If both directions of every head output z_h, out_proj gives what proj gives on z."""
    module = MultiHeadBiLSTM.from_site(SiteSpec(12, 3, 4), source=attention, init="attention")
    z = torch.randn(2, 5, 3, 4)  # (B, N, H, d)
    both = torch.cat([z, z], dim=-1).flatten(2)  # (B, N, H * 2d): per head, forward then backward
    with torch.no_grad():
        torch.testing.assert_close(module.out_proj(both), attention.proj(z.flatten(2)))


def test_attention_init_without_qkv_bias_zeroes_in_proj_bias() -> None:
    source = Attention(dim=12, num_heads=3, qkv_bias=False)
    module = MultiHeadBiLSTM.from_site(SiteSpec(12, 3, 4), source=source, init="attention")
    assert torch.equal(module.in_proj.bias, torch.zeros(12))


def test_attention_init_from_separate_value_projection() -> None:
    source = nn.Module()
    source.v, source.proj = nn.Linear(12, 12), nn.Linear(12, 12)
    module = MultiHeadBiLSTM.from_site(SiteSpec(12, 3, 4), source=source, init="attention")
    assert torch.equal(module.in_proj.weight, source.v.weight) and torch.equal(module.in_proj.bias, source.v.bias)


def test_random_init_leaves_the_projections_alone(attention: Attention) -> None:
    module = MultiHeadBiLSTM.from_site(SiteSpec(12, 3, 4), source=attention)
    assert not torch.equal(module.in_proj.weight, attention.qkv.weight[24:])


@pytest.mark.parametrize(
    ("source", "options"),
    [
        (None, {}),
        (nn.Linear(12, 12), {}),
        (Attention(dim=16, num_heads=4), {}),  # wider than the site
        (Attention(dim=12, num_heads=3, attn_head_dim=8), {}),  # value projection is 24 wide
        (Attention(dim=12, num_heads=3), {"hidden_size": 6}),  # hidden size is not the head width
    ],
    ids=["none", "linear", "wider", "head_dim", "hidden_size"],
)
def test_attention_init_refuses_incompatible_sources(source: nn.Module | None, options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="init='attention'"):
        MultiHeadBiLSTM.from_site(SiteSpec(12, 3, 4), source=source, init="attention", **options)


def test_attention_init_on_the_meta_device_checks_shapes_only() -> None:
    with torch.device("meta"):
        source = Attention(dim=12, num_heads=3)
        module = MultiHeadBiLSTM.from_site(SiteSpec(12, 3, 4), source=source, init="attention")
    assert module.in_proj.weight.is_meta and module.out_proj.weight.shape == (12, 24)


@pytest.mark.parametrize("heads", [5, 7])
def test_heads_that_do_not_divide_the_width_are_refused(heads: int) -> None:
    with pytest.raises(ValueError, match=f"heads={heads}"):
        MultiHeadBiLSTM.from_site(SiteSpec(dim=12, num_heads=3, head_dim=4), heads=heads)


def test_gradients_reach_every_parameter() -> None:
    module = MultiHeadBiLSTM(dim=6, hidden_sizes=((3, 1), (2, 5)), head_dim=3)
    module(torch.randn(2, 4, 6)).square().sum().backward()
    for name, parameter in module.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
