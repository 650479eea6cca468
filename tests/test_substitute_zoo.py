"""Every registered substitute behind one contract: shapes, the rewrite, ONNX parity, pruning where declared."""

from __future__ import annotations

import typing

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from far_modules import CostKind, MultiHeadBiGRU, Prunable, SiteSpec, build_substitute, get_substitute, substitute_names
from surgery.cli import app
from surgery.deploy.export import export_onnx
from surgery.errors import SurgeryError
from surgery.recipe import recipe_from_data
from surgery.recipe.schema import ExportSpec
from surgery.rewrite.student import plan_and_build

NAMES = substitute_names()
KWARGS = {"img_size": 16, "patch_size": 4, "embed_dim": 16, "depth": 2, "num_heads": 2}


def test_the_zoo_is_registered():
    assert {"bilstm", "bigru", "conv", "linear_attention", "ssm", "identity"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_each_substitute_declares_its_cost_kind(name):
    assert get_substitute(name).cost_kind in typing.get_args(CostKind)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("out_dim", [None, 24])
def test_each_substitute_maps_tokens_to_tokens_of_the_sites_output_width(name, out_dim):
    module = build_substitute(name, SiteSpec(dim=16, num_heads=2, head_dim=8, seq_len=5, out_dim=out_dim))
    assert module(torch.randn(3, 5, 16)).shape == (3, 5, out_dim or 16)


def rewrite(name: str, layers: list[int] | None = None):
    rewrite = {"substitute": name, **({"select": {"layers": layers}} if layers is not None else {})}
    data = {"name": name, "model": {"name": "vit_tiny_patch16_224", "kwargs": KWARGS}, "rewrites": [rewrite]}
    return plan_and_build(recipe_from_data(data, []), "cpu")


@settings(max_examples=12, deadline=None)
@given(name=st.sampled_from(NAMES), layers=st.lists(st.integers(0, 1), min_size=1, max_size=2, unique=True))
def test_rewriting_with_any_substitute_keeps_shapes_and_untouched_weights(name, layers):
    plan, teacher, student = rewrite(name, sorted(layers))
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert student.eval()(x).shape == teacher.eval()(x).shape
    sites = tuple(f"{path}." for path in plan.selected_paths)
    after = student.state_dict()
    for key, value in teacher.state_dict().items():
        if not key.startswith(sites):
            assert torch.equal(after[key], value), key


@pytest.mark.parametrize("name", NAMES)
def test_each_substitute_exports_to_onnx_with_parity(name, tmp_path):
    plan, _, student = rewrite(name)
    result = export_onnx(student, plan.input_size, tmp_path / f"{name}.onnx", ExportSpec())
    assert result.max_abs_diff <= 1e-4


def test_identity_drops_the_attention_branch():
    _, teacher, student = rewrite("identity")
    x = torch.randn(1, 17, 16)
    block = student.blocks[0]
    with torch.no_grad():
        expected = x + block.drop_path2(block.ls2(block.mlp(block.norm2(x))))
        torch.testing.assert_close(block.eval()(x), expected)


def test_the_gru_prunes_like_the_lstm_shrink_matching_its_masked_oracle():
    module = MultiHeadBiGRU(12, ((5, 4), (3, 6)), head_dim=6).eval()
    assert isinstance(module, Prunable)
    keep = {group.key: torch.arange(group.size) % 2 == 0 for group in module.unit_groups()}
    x = torch.randn(2, 7, 12)
    with torch.no_grad():
        torch.testing.assert_close(module.shrink(keep)(x), module.masked(keep)(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"kernal_size": 3}, "kernel_size"),  # the accepted params are listed
        ({"kernel_size": 4}, "positive odd integer"),
    ],
)
def test_a_param_the_substitute_does_not_take_fails_validation(tmp_path, params, message):
    recipe = tmp_path / "conv.yaml"
    recipe.write_text(f"name: c\nmodel: {{name: vit_tiny_patch16_224}}\nrewrites:\n  - substitute: conv\n    params: {params}\n")
    result = CliRunner().invoke(app, ["plan", str(recipe), "--device", "meta"])
    assert result.exit_code == 2
    assert message in result.output


def test_an_unknown_substitute_lists_the_registered_ones():
    with pytest.raises(SurgeryError, match="known: bigru, bilstm, conv, identity, linear_attention, ssm"):
        rewrite("mamba2")


def test_a_mixed_recipe_gives_each_layer_range_its_own_substitute():
    rewrites = [{"select": {"layers": "0"}, "substitute": "bilstm"}, {"select": {"layers": "1"}, "substitute": "ssm", "params": {"state_size": 4}}]
    data = {"name": "mixed", "model": {"name": "vit_tiny_patch16_224", "kwargs": KWARGS}, "rewrites": rewrites}
    plan, _, student = plan_and_build(recipe_from_data(data, []), "cpu")
    assert [(step.site.path, step.substitute) for step in plan.steps] == [("blocks.0.attn", "bilstm"), ("blocks.1.attn", "ssm")]
    assert [type(student.blocks[i].attn.current_substitute()).__name__ for i in (0, 1)] == ["MultiHeadBiLSTM", "SelectiveSSM"]
    assert student.blocks[1].attn.current_substitute().state_size == 4


@pytest.mark.parametrize("name", NAMES)
def test_the_cost_model_sees_what_each_substitute_declares(name):
    from hwmodel import Product, Recurrence
    from surgery.measure.costing import workload_of

    plan, _, student = rewrite(name)
    work = workload_of(student, plan.selected_paths, plan.input_size)
    kind = get_substitute(name).cost_kind
    assert bool(work.of_kind(Product)) == (kind == "activation_products")  # crossbars written per input only for these
    if kind in ("weights", "none"):
        assert not work.of_kind(Recurrence)
    if name in ("bilstm", "bigru"):  # native recurrences; ssm's scan is priced as the elementwise steps it runs
        assert len(work.of_kind(Recurrence)) == 2 * 2 * 2  # blocks x heads x directions
