"""Site detection by dataflow: activation x activation products, whatever the class is called."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import timm
import torch
from torch import nn

from surgery import Site, SurgeryError, find_sites
from tests.strategies import set_fused_attn, single_thread  # noqa: F401 - single_thread: a fixture

pytestmark = pytest.mark.usefixtures("single_thread")


def deit_tiny(fused: bool) -> nn.Module:
    """DeiT-Tiny's 12 blocks at 32 px: 4 patches, so tracing and shape propagation stay fast."""
    model = timm.create_model("deit_tiny_patch16_224", pretrained=False, img_size=32).eval()
    set_fused_attn(model, fused)
    return model


@pytest.fixture(scope="module")
def deit_models() -> dict[bool, nn.Module]:
    """DeiT-Tiny with fused (sdpa) and explicit attention; tests that mutate one take a copy."""
    return {fused: deit_tiny(fused) for fused in (True, False)}


@pytest.fixture(scope="module")
def deit_sites(deit_models: dict[bool, nn.Module]) -> dict[bool, list[Site]]:
    return {fused: find_sites(model, torch.randn(2, 3, 32, 32)) for fused, model in deit_models.items()}


@pytest.mark.parametrize("fused", [True, False], ids=["sdpa", "explicit"])
def test_deit_tiny_has_twelve_sites_with_its_head_layout(deit_sites: dict[bool, list[Site]], fused: bool) -> None:
    sites = deit_sites[fused]
    assert [s.path for s in sites] == [f"blocks.{i}.attn" for i in range(12)]
    assert [s.index for s in sites] == list(range(12))
    for s in sites:
        assert (s.class_name, s.layout, s.dim, s.num_heads, s.head_dim, s.seq_len) == ("Attention", "tokens", 192, 3, 64, 5)
        assert s.signature.startswith("Attention.forward(x")
        assert s.input_shape == "(B, 5, 192)" and s.extra_inputs == ()


def test_fused_attention_is_one_sdpa_product_explicit_is_two_matmuls(deit_sites: dict[bool, list[Site]]) -> None:
    fused, explicit = deit_sites[True][0], deit_sites[False][0]
    assert len(fused.products) == 1 and "scaled_dot_product_attention" in fused.products[0]
    assert len(explicit.products) == 2 and all("matmul" in p for p in explicit.products)
    assert dataclasses.replace(fused, products=()) == dataclasses.replace(explicit, products=())


def test_prefix_tokens_count_in_the_sequence_length() -> None:
    model = timm.create_model("deit_tiny_distilled_patch16_224", img_size=32, depth=2).eval()
    sites = find_sites(model, torch.randn(1, 3, 32, 32))
    assert len(sites) == 2 and {s.seq_len for s in sites} == {6}  # 4 patches + class + distillation token


def test_sequence_length_follows_the_example_input() -> None:
    model = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=1, dynamic_img_size=True).eval()
    assert find_sites(model, torch.randn(1, 3, 32, 32))[0].seq_len == 17
    assert find_sites(model, torch.randn(1, 3, 16, 16))[0].seq_len == 5


def test_a_convnet_has_no_sites() -> None:
    model = timm.create_model("resnet10t", pretrained=False, num_classes=4).eval()
    assert find_sites(model, torch.randn(1, 3, 32, 32)) == []


def test_an_mlp_has_no_sites() -> None:
    model = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 8))
    assert find_sites(model, torch.randn(2, 5, 8)) == []


class WeightProducts(nn.Module):
    """Every contraction here multiplies an activation with a weight, a buffer or shape metadata."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(dim, dim))
        self.register_buffer("table", torch.randn(dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x @ self.weight + torch.matmul(x, self.weight.t()) + x @ self.table
        y = y + torch.einsum("bnc,cd->bnd", x, self.weight)
        return y + torch.bmm(x, self.weight.expand(x.shape[0], -1, -1))  # expand reads only x's shape


class Quux(nn.Module):
    """Single-head attention by bmm, under a name nothing could guess."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = torch.bmm(x, x.transpose(1, 2))  # (B, N, N)
        return torch.bmm(scores.softmax(-1), x)  # (B, N, C)


class Blender(nn.Module):
    """Multi-head attention written with einsum: (B, N, C) -> (B, N, C)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, N, d)
        weights = torch.einsum("bhnd,bhmd->bhnm", q, k).softmax(-1)  # (B, H, N, N)
        mixed = torch.einsum("bhnm,bhmd->bhnd", weights, v)  # (B, H, N, d)
        return self.out(mixed.transpose(1, 2).reshape(B, N, C))


class LatentQuery(nn.Module):
    """Cross-attention from learned queries: q·kᵀ has one activation operand, weights·x has two."""

    def __init__(self, dim: int, queries: int) -> None:
        super().__init__()
        self.latent = nn.Parameter(torch.randn(1, queries, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.latent.expand(x.shape[0], -1, -1)  # (B, M, C)
        return (q @ x.transpose(1, 2)).softmax(-1) @ x  # (B, M, C)


class Residual(nn.Module):
    def __init__(self, mix: nn.Module) -> None:
        super().__init__()
        self.mix = mix

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(x)


class Stack(nn.Module):
    def __init__(self, *mixers: nn.Module) -> None:
        super().__init__()
        self.layers = nn.ModuleList(Residual(m) for m in mixers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


def test_weight_buffer_and_metadata_products_are_not_sites() -> None:
    assert find_sites(Stack(WeightProducts(8)), torch.randn(2, 5, 8)) == []


def test_activation_bmm_is_a_site_whatever_its_class_is_called() -> None:
    [found] = find_sites(Stack(WeightProducts(8), Quux()), torch.randn(2, 5, 8))
    assert (found.index, found.path, found.class_name) == (0, "layers.1.mix", "Quux")
    assert (found.dim, found.num_heads, found.head_dim, found.seq_len, len(found.products)) == (8, 1, 8, 5, 2)


def test_einsum_attention_is_found_with_its_heads() -> None:
    sites = find_sites(Stack(Blender(32, 4), Blender(32, 2)), torch.randn(1, 7, 32))
    assert [(s.path, s.class_name) for s in sites] == [("layers.0.mix", "Blender"), ("layers.1.mix", "Blender")]
    assert [(s.num_heads, s.head_dim, s.dim, s.seq_len) for s in sites] == [(4, 8, 32, 7), (2, 16, 32, 7)]


def test_only_the_product_of_two_activations_counts_in_cross_attention() -> None:
    [found] = find_sites(Stack(LatentQuery(8, 5)), torch.randn(2, 5, 8))
    assert found.path == "layers.0.mix" and len(found.products) == 1


def test_the_innermost_module_owns_the_site() -> None:
    outer = nn.Sequential(Stack(Quux()))
    assert [s.path for s in find_sites(outer, torch.randn(1, 4, 6))] == ["0.layers.0.mix"]


def test_a_renamed_timm_attention_is_still_found(deit_models: dict[bool, nn.Module]) -> None:
    model = copy.deepcopy(deit_models[False])
    attention = type(model.blocks[0].attn)
    model.blocks[3].attn.__class__ = type("Zzyzx", (attention,), {})  # same forward, a name no rule could know
    sites = find_sites(model, torch.randn(1, 3, 32, 32))
    assert len(sites) == 12 and sites[3].class_name == "Zzyzx" and sites[3].num_heads == 3


class RootProduct(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ x.transpose(1, 2)


def test_a_product_outside_any_submodule_is_refused() -> None:
    with pytest.raises(SurgeryError, match="outside any submodule"):
        find_sites(RootProduct(), torch.randn(1, 4, 6))


class DataDependent(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if x.sum() > 0 else -x


def test_an_untraceable_model_is_a_surgery_error() -> None:
    with pytest.raises(SurgeryError, match="cannot trace"):
        find_sites(DataDependent(), torch.randn(1, 4, 6))


def test_finding_sites_changes_nothing_in_the_model() -> None:
    model = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sites = find_sites(model, torch.randn(1, 3, 32, 32))
    assert all(isinstance(s, Site) for s in sites)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert all(type(b.attn).__name__ == "Attention" for b in model.blocks)
