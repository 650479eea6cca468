"""One small timm model per adapter kind: the contract read off its sites, the rewrite, and what it leaves alone."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from timm.layers import AttentionPool2d
from torch import nn

from surgery.analyze.coverage import FAMILIES
from surgery.errors import SurgeryError
from surgery.models import example_input
from surgery.recipe import recipe_from_data
from surgery.rewrite.plan import plan
from surgery.rewrite.student import build_student, plan_and_build

BY_FAMILY = {family.family: family for family in FAMILIES}


def rewrite(family: str, token_order: str = "raster", **kwargs: object):
    spec = BY_FAMILY[family]
    model = {"name": spec.model, "kwargs": {**spec.kwargs, **kwargs}}
    if spec.input_size:
        model["input_size"] = list(spec.input_size)
    data = {"name": family, "model": model, "rewrites": [{"substitute": "bilstm", "token_order": token_order}]}
    return plan_and_build(recipe_from_data(data, []), "cpu")


def assert_rewrite_keeps_shapes_and_other_weights(plan, teacher, student) -> None:
    x = example_input(teacher, plan.input_size, batch=2)
    with torch.no_grad():
        assert student.eval()(x).shape == teacher.eval()(x).shape
    sites = tuple(f"{path}." for path in plan.selected_paths)
    kept = {k: v for k, v in teacher.state_dict().items() if not k.startswith(sites)}
    after = student.state_dict()
    for key, value in kept.items():
        torch.testing.assert_close(after[key], value, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("family", "layout", "described"),
    [
        ("vit", "tokens", "tokens, grid 2x2, 1 prefix token"),
        ("swin", "tokens", "tokens, grid 4x4"),  # windows as sequences, the shift mask accepted
        ("pvt_v2", "tokens", "tokens"),  # the grid arrives as feat_size with every call
        ("eva", "tokens", "tokens, grid 2x2, 1 prefix token"),  # rotary embeddings accepted, not used
        ("cait", "tokens", "tokens, grid 2x2, 1 prefix token, class token out"),
        ("coatnet", "channels_first", "channels_first, grid 2x2"),
        ("samvit", "channels_last", "channels_last, grid 2x2"),
        ("nest", "grouped_tokens", "grouped_tokens, grid 4x4"),
        ("levit", "tokens", "tokens, grid 4x4, out width 256, stride 2"),  # the site subsamples its queries
        ("lambda", "channels_first", "channels_first, grid 16x16, stride 2"),  # its own AvgPool2d downsamples
        ("tiny_vit", "tokens", "tokens, grid 7x7"),  # inside a module timm keeps opaque to torch.fx: probed
    ],
)
def test_each_adapter_kind_rewrites_and_keeps_shapes(family, layout, described):
    plan, teacher, student = rewrite(family)
    contracts = [step.site.contract for step in plan.steps]
    assert all(c is not None for c in contracts)
    assert layout in {c.layout for c in contracts}
    assert described in {c.describe for c in contracts}
    assert_rewrite_keeps_shapes_and_other_weights(plan, teacher, student)


def test_window_masks_and_rotary_embeddings_have_roles():
    swin, _, _ = rewrite("swin")
    eva, _, _ = rewrite("eva")
    assert {step.site.contract.roles.get("mask") for step in swin.steps} == {"window_mask"}
    assert {step.site.contract.roles.get("rope") for step in eva.steps} == {"position"}


@pytest.mark.parametrize(
    ("family", "message"),
    [
        ("mvitv2", r"no selected site can be adapted: mvitv2 site stages\.0\.blocks\.0\.attn \(MultiScaleAttention\) cannot be adapted: it returns more than one tensor"),
        ("mobilevitv2", r"the model has no attention site"),  # elementwise 'linear attention' is no activation product
    ],
)
def test_unsupported_attention_is_refused_naming_family_site_and_reason(family, message):
    with pytest.raises(SurgeryError, match=message):
        rewrite(family)


def test_a_site_the_glob_selected_and_no_adapter_fits_is_skipped_with_its_reason():
    plan, teacher, student = rewrite("hiera")
    reasons = {skip.path: skip.reason for skip in plan.skipped}
    assert "hiera site blocks.1.attn (MaskUnitAttention) cannot be adapted: it changes the sequence length from 256 to 64" in reasons["blocks.1.attn"]
    assert "blocks.1.attn" not in plan.selected_paths and plan.steps
    assert_rewrite_keeps_shapes_and_other_weights(plan, teacher, student)


@settings(max_examples=6, deadline=None)
@given(window=st.integers(1, 4), patch=st.sampled_from([1, 2, 4]), windows_per_side=st.integers(1, 2), order=st.sampled_from(["raster", "snake"]))
def test_window_adapter_keeps_shapes_and_untouched_weights(window, patch, windows_per_side, order):
    img_size = patch * window * 2 * windows_per_side  # stage 2 (half resolution) still tiles into windows
    kwargs = {"img_size": img_size, "patch_size": patch, "window_size": window, "embed_dim": 8, "depths": [2, 2], "num_heads": [1, 2]}
    plan, teacher, student = rewrite("swin", order, **kwargs)
    assert len(plan.steps) == 4
    assert_rewrite_keeps_shapes_and_other_weights(plan, teacher, student)


def test_inline_attention_is_cut_out_of_the_block_and_the_rest_of_the_block_is_kept():
    plan, teacher, student = rewrite("vit_parallel")
    assert [step.site.path for step in plan.steps] == ["blocks.0", "blocks.1"]
    assert "attention inline in the block" in plan.steps[0].site.contract.describe
    assert_rewrite_keeps_shapes_and_other_weights(plan, teacher, student)
    block, original = student.blocks[0].block, teacher.blocks[0]
    assert {"in_norm", "in_proj", "attn_out_proj", "mlp_out_proj", "substitute"} <= {name for name, _ in block.named_children()}
    seen = {}
    block.substitute.register_forward_hook(lambda _m, args, out: seen.update(read=args[0], wrote=out))
    block.attn_out_proj.register_forward_pre_hook(lambda _m, args: seen.update(projected=args[0]))
    x = torch.randn(2, 5, original.in_norm.normalized_shape[0])
    with torch.no_grad():
        block(x)
        torch.testing.assert_close(seen["read"], original.in_norm(x))  # the substitute reads the normalised input
    assert seen["projected"] is seen["wrote"]  # and its output is what the attention's output projection reads
    for name in ("in_proj", "mlp_out_proj", "attn_out_proj"):
        torch.testing.assert_close(block.get_submodule(name).weight, original.get_submodule(name).weight, rtol=0, atol=0)


def test_attention_pooling_heads_are_read_as_pooled_sequences():
    planned, teacher, student = rewrite("vit", global_pool="map")  # AttentionPoolLatent, as SigLIP's head
    pooled = {step.site.path: step.site.contract.describe for step in planned.steps if step.site.contract.output == "pooled"}
    assert pooled == {"attn_pool": "tokens, grid 2x2, pooled out"}
    assert_rewrite_keeps_shapes_and_other_weights(planned, teacher, student)


def test_a_feature_map_pooled_by_attention_is_read_channels_first():
    model = nn.Sequential(nn.Conv2d(3, 16, 4, stride=4), AttentionPool2d(16, feat_size=4, out_features=8, num_heads=2)).eval()
    recipe = recipe_from_data({"name": "clip_head", "model": {"name": "resnet50_clip", "input_size": [3, 16, 16]}, "rewrites": [{"substitute": "bilstm"}]})
    planned = plan(recipe, model)
    (step,) = planned.steps
    assert (step.site.path, step.site.contract.describe, step.site.num_heads) == ("1", "channels_first, grid 4x4, pooled out, out width 8", 2)
    student = build_student(model, planned)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert student(x).shape == model(x).shape == (2, 8)


def test_gemma_vits_split_rotary_embeddings_are_position_arguments():
    recipe = recipe_from_data({"name": "gemma", "model": {"name": "gemma4_vit_167m_enc"}, "rewrites": [{"substitute": "bilstm"}]})
    planned, _, _ = plan_and_build(recipe, "meta")
    assert {(step.site.contract.roles.get("rope_cos"), step.site.contract.roles.get("rope_sin")) for step in planned.steps} == {("position", "position")}
