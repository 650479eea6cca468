"""DeiT-Tiny and a FAR-like variant at 224 px, priced end to end (shapes on the meta device)."""

from __future__ import annotations

import math

import pytest
import timm
import torch
from torch import fx, nn

from far_modules import MultiHeadBiLSTM, SiteSpec
from hwmodel import (
    Product,
    Recurrence,
    Workload,
    estimate,
    extract_workload,
    get_device,
    get_gpu,
    implied_efficiency,
    roofline_total,
)

ISAAC = get_device("isaac")


class _IgnoreMask(nn.Module):
    """timm's Block calls attn(x, attn_mask=..., is_causal=...); the BiLSTM takes x only."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        return self.inner(x)


class _LeafTracer(fx.Tracer):
    """fx cannot iterate the BiLSTM's heads, so it stays a leaf (as surgery keeps its sites); the recorder expands it."""

    def is_leaf_module(self, module: nn.Module, name: str) -> bool:
        return isinstance(module, MultiHeadBiLSTM) or super().is_leaf_module(module, name)


def _workload(far: bool, batch: int = 1) -> Workload:
    with torch.device("meta"):
        model = timm.create_model("deit_tiny_patch16_224", pretrained=False).eval()
        if far:
            for block in model.blocks:
                block.attn = _IgnoreMask(MultiHeadBiLSTM.from_site(SiteSpec(192, 3, 64, 197)))
    tracer = _LeafTracer()
    graph = tracer.trace(model)
    return extract_workload(fx.GraphModule(tracer.root, graph), torch.empty(batch, 3, 224, 224, device="meta"))


@pytest.fixture(scope="module")
def deit() -> Workload:
    return _workload(far=False)


@pytest.fixture(scope="module")
def far() -> Workload:
    return _workload(far=True)


def test_workloads_match_the_papers_mac_counts(deit, far):
    """FAR paper Table 2: DeiT-Tiny 1.25 G MACs, FAR-Tiny 1.45 G at 224 px."""
    assert deit.macs / 1e9 == pytest.approx(1.25, rel=0.02)
    assert far.macs / 1e9 == pytest.approx(1.45, rel=0.02)
    assert deit.skipped == far.skipped == ()


def test_attention_products_disappear_in_far(deit, far):
    assert len(deit.of_kind(Product)) == 2 * 12
    assert sum(op.macs for op in deit.of_kind(Product)) == 12 * 2 * 3 * 197 * 197 * 64
    assert far.of_kind(Product) == [] and len(far.of_kind(Recurrence)) == 12 * 3 * 2


@pytest.mark.parametrize("policy", ["write", "digital"])
def test_totals_are_positive_and_finite(deit, far, policy):
    for work in (deit, far):
        result = estimate(work, ISAAC, policy=policy)
        total = result.total
        assert all(0 < v < math.inf for v in (total.latency_s, total.energy_j, total.traffic_bytes, result.area_mm2))
        assert result.total.crossbars > 0 and result.chips == 1


def test_per_block_rows_show_where_attention_pays_for_writes(deit, far):
    written = estimate(deit, ISAAC, policy="write")
    blocks = [f"blocks.{i}" for i in range(12)]
    assert set(blocks) <= set(written.blocks)
    assert all(written.blocks[b].write_j > 0 and written.blocks[b].write_crossbars > 0 for b in blocks)
    assert written.lifetime_inferences == ISAAC.crossbar.endurance_writes
    assert estimate(far, ISAAC, policy="write").total.write_j == 0


def test_far_moves_fewer_bytes_than_attention(deit, far):
    assert estimate(far, ISAAC).total.traffic_bytes < estimate(deit, ISAAC).total.traffic_bytes


def test_far_heads_and_directions_overlap(far):
    result = estimate(far, ISAAC)
    block = far.blocks()["blocks.0"]
    serial = sum(result.ops[i].latency_s for i in block)
    lstm = max(result.ops[i].latency_s for i in block if isinstance(far.ops[i], Recurrence))
    assert result.blocks["blocks.0"].latency_s == pytest.approx(serial - 5 * lstm)


def test_gpu_roofline_needs_an_efficiency_factor_for_deit(deit):
    """DeiT paper Table 1: DeiT-Ti runs 2536 images/s on a V100; the pure roofline promises far more."""
    batch = 64
    efficiency = implied_efficiency(_workload(far=False, batch=batch), get_gpu("v100"), 2536, batch=batch)
    assert 0.02 < efficiency < 0.3
    pure, calibrated = (roofline_total(deit, get_gpu("a100", {"efficiency": e})) for e in (1.0, efficiency))
    assert calibrated.latency_s == pytest.approx(pure.latency_s / efficiency)
