"""Pricing a teacher and its student: block rows, JSON totals that add up, and how cost scales with tokens."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hwmodel import Product, Recurrence
from surgery.measure.costing import CostReport, block_paths, price_models, workload_of
from surgery.recipe import recipe_from_data
from surgery.rewrite.student import plan_and_build


def _tiny(img_size: int, *overrides: str, device: str = "meta") -> tuple:
    """A 2-block ViT with 8-pixel patches: (img_size / 8)² + 1 tokens."""
    model = {"name": "vit_tiny_patch16_224", "kwargs": {"img_size": img_size, "patch_size": 8, "depth": 2}}
    recipe = recipe_from_data({"name": "tiny", "model": model, "rewrites": [{}]}, overrides)
    return recipe, *plan_and_build(recipe, device)


@pytest.fixture(scope="module", params=[32, 64], ids=["17 tokens", "65 tokens"])
def priced(request) -> tuple[int, CostReport, tuple]:
    recipe, plan, teacher, student = _tiny(request.param)
    return plan.sites[0].seq_len, price_models(recipe, plan, teacher, student), (plan, teacher, student)


def test_block_paths_are_the_parents_of_the_sites():
    assert block_paths(["blocks.0.attn", "blocks.0.attn2", "blocks.1.attn", "attn"]) == ["blocks.0", "blocks.1", "attn"]


def test_the_student_runs_lstms_and_no_activation_products(priced):
    _, _, (plan, teacher, student) = priced
    paths, size = plan.selected_paths, plan.input_size
    assert len(workload_of(teacher, paths, size).of_kind(Product)) == 2 * 2
    work = workload_of(student, paths, size)
    assert work.of_kind(Product) == [] and len(work.of_kind(Recurrence)) == 2 * 3 * 2  # blocks x heads x directions


def test_a_shrunk_substitute_is_priced_at_its_new_size():
    _, plan, _, student = _tiny(32, "rewrites.0.params.hidden_size=8", device="cpu")
    adapter = student.get_submodule("blocks.0.attn")
    keep = {group.key: torch.arange(group.size) < 3 + group.head for group in adapter.substitute.unit_groups()}
    adapter.substitute = adapter.substitute.shrink(keep)
    work = workload_of(student, plan.selected_paths, plan.input_size)
    hidden = [op.hidden_size for op in work.of_kind(Recurrence)]
    assert hidden == [3, 3, 4, 4, 5, 5] + [8] * 6  # blocks.0 per head and direction, then blocks.1 untouched


def test_json_components_and_block_rows_add_up_to_the_totals(priced):
    _, report, _ = priced
    data = report.to_json()
    for model in ("teacher", "student"):
        totals = data[model]
        assert sum(totals["energy_by_component_j"].values()) == pytest.approx(totals["energy_j"])
        assert sum(row["energy_j"] for row in totals["blocks"]) == pytest.approx(totals["energy_j"])
        assert {"blocks.0", "blocks.1", "patch_embed", "head"} <= {row["block"] for row in totals["blocks"]}
        assert 0 < totals["adc_share"] < 1 and math.isfinite(totals["gpu"]["latency_s"])
    assert data["teacher"]["lifetime_inferences"] == 1e6 and data["student"]["lifetime_inferences"] is None


def test_pricing_moves_no_batch_norm_statistic_and_restores_the_mode():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    model[0].eval()
    assert len(workload_of(model, [], (3, 8, 8)).ops) == 2
    assert model[1].num_batches_tracked == 0 and not model[1].running_mean.any()
    assert model.training and model[1].training and not model[0].training


def test_far_latency_grows_linearly_and_attention_products_quadratically_with_tokens():
    (r1, *m1), (r2, *m2) = _tiny(32), _tiny(64)
    (n1, n2) = (m[0].sites[0].seq_len for m in (m1, m2))
    small, large = price_models(r1, *m1), price_models(r2, *m2)
    growth = large.student.estimate.total.latency_s / small.student.estimate.total.latency_s
    assert (n1, n2) == (17, 65) and growth == pytest.approx(n2 / n1, rel=0.02)
    products = [sum(op.macs for op in workload_of(m[1], m[0].selected_paths, m[0].input_size).of_kind(Product)) for m in (m1, m2)]
    assert products[1] / products[0] == pytest.approx((n2 / n1) ** 2, rel=1e-9)


def test_the_digital_policy_writes_nothing_and_takes_mac_lane_area():
    recipe, plan, teacher, student = _tiny(32, "hardware.policy=digital")
    report = price_models(recipe, plan, teacher, student)
    assert report.policy == "digital" and report.teacher.estimate.total.write_crossbars == 0
    assert report.teacher.estimate.area_mm2 > report.teacher.estimate.total.area_mm2  # MAC lanes for the products
    assert report.student.estimate.area_mm2 == report.student.estimate.total.area_mm2  # no products left
