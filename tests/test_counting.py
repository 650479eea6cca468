"""Parameter and MAC counts: DeiT-Tiny's published numbers, analytic recurrent MACs, meta = CPU."""

from __future__ import annotations

import copy

import pytest
import timm
import torch
from torch import nn

from far_modules import MultiHeadBiLSTM
from surgery import Counts, Recipe, build_model, build_student, count, plan
from surgery.graph.shaped import ShapedGraphs
from surgery.measure.counting import count_graph
from surgery.models import example_input
from tests.strategies import set_fused_attn, single_thread  # noqa: F401 - single_thread: a fixture

pytestmark = pytest.mark.usefixtures("single_thread")

DEIT = "deit_tiny_patch16_224"


@pytest.fixture(scope="module")
def deit_counts() -> Counts:
    return count(timm.create_model(DEIT, pretrained=False).eval(), (3, 224, 224))


def test_deit_tiny_parameters_and_macs(deit_counts: Counts) -> None:
    assert deit_counts.params == 5_717_416
    assert deit_counts.macs == pytest.approx(1.2537e9, rel=0.01)


def test_deit_tiny_attention_macs_are_analytic(deit_counts: Counts) -> None:
    n, d = 197, 192
    qkv, scores, mix, proj = n * d * 3 * d, n * n * d, n * n * d, n * d * d
    assert [deit_counts.module_macs(f"blocks.{i}.attn") for i in range(12)] == [qkv + scores + mix + proj] * 12
    assert deit_counts.module_macs("blocks.0.attn.qkv") == qkv


def test_meta_device_counts_equal_cpu_counts(deit_counts: Counts) -> None:
    meta = count(build_model(DEIT, device="meta"), (3, 224, 224))
    assert meta == deit_counts


def lstm_macs(batch: int, tokens: int, module: MultiHeadBiLSTM) -> int:
    """B * T * sum over heads and directions of 4H * (I + H)."""
    hidden = [h for sizes in module.hidden_sizes for h in sizes]
    return batch * tokens * sum(4 * h * (module.head_dim + h) for h in hidden)


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_bilstm_recurrent_macs_are_analytic(device: str) -> None:
    with torch.device(device):
        module = MultiHeadBiLSTM(dim=6, hidden_sizes=((3, 1), (2, 5)), head_dim=3)
    batch, tokens = 2, 7
    counts = count(module, (tokens, 6), batch=batch)
    per_lstm = [counts.module_macs(f"{direction}_rnns.{h}") for h in range(2) for direction in ("forward", "backward")]
    assert per_lstm == [batch * tokens * 4 * h * (3 + h) for h in (3, 1, 2, 5)]
    projections = batch * tokens * (6 * 6 + 11 * 6)
    assert counts.macs == lstm_macs(batch, tokens, module) + projections
    assert counts.params == sum(p.numel() for p in module.parameters())


def test_deit_tiny_site_bilstm_macs() -> None:
    module = MultiHeadBiLSTM(dim=192, hidden_sizes=((64, 64),) * 3, head_dim=64)
    assert count(module, (197, 192)).macs == 197 * (6 * 4 * 64 * 128 + 192 * 192 + 384 * 192)


def test_macs_scale_with_the_batch() -> None:
    model = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2).eval()
    one, three = count(model, (3, 32, 32)), count(model, (3, 32, 32), batch=3)
    assert three.macs == 3 * one.macs and three.params == one.params


def test_fused_and_explicit_attention_count_the_same() -> None:
    model = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2).eval()
    fused = count(model, (3, 32, 32))
    set_fused_attn(model, False)
    assert count(model, (3, 32, 32)) == fused


def small_student(device: str) -> nn.Module:
    recipe = Recipe.model_validate(
        {
            "name": "count",
            "model": {"name": "vit_tiny_patch16_224", "kwargs": {"img_size": 32, "patch_size": 8, "depth": 2}},
            "rewrites": [{"select": {"layers": [1]}, "params": {"hidden_size": 24}}],
        }
    )
    teacher = build_model(recipe.model.name, recipe.model.kwargs, device=device)
    return build_student(teacher, plan(recipe, teacher))


def test_student_counts_on_meta_equal_cpu() -> None:
    cpu, meta = count(small_student("cpu"), (3, 32, 32)), count(small_student("meta"), (3, 32, 32))
    assert meta == cpu
    lstm = 17 * 3 * 2 * 4 * 24 * (64 + 24)  # 17 tokens, 3 heads, 2 directions, hidden 24 over inputs of 64
    assert cpu.module_macs("blocks.1.attn") == 17 * (192 * 192 + 3 * 2 * 24 * 192) + lstm


def test_counting_leaves_the_model_as_it_was() -> None:
    model = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=1).eval()
    before = copy.deepcopy(model.state_dict())
    count(model, (3, 32, 32))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.training


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("cait_xxs24_224", {"img_size": 32, "patch_size": 8, "depth": 1, "depth_token_only": 1}),
        ("vit_base_patch16_siglip_224", {"img_size": 32, "patch_size": 8, "depth": 1, "embed_dim": 32, "num_heads": 2}),
    ],
)
def test_models_whose_modules_return_a_parameter_are_counted_and_keep_their_grad_flags(name, kwargs):
    """CaiT hands its class token and SigLIP's pooling head its latent straight to a module: counting must not trip on them."""
    model = build_model(name, kwargs)
    flags = [p.requires_grad for p in model.parameters()]
    assert count(model, (3, 32, 32)).macs > 0
    assert [p.requires_grad for p in model.parameters()] == flags


@pytest.mark.parametrize("model_name", [DEIT, "vit_small_patch16_224", "swin_tiny_patch4_window7_224"])
def test_counting_a_propagated_graph_equals_counting_a_run(model_name: str) -> None:
    recipe = Recipe.model_validate({"name": "count", "model": {"name": model_name}, "rewrites": [{"substitute": "bilstm"}]})
    graphs = ShapedGraphs()
    teacher = build_model(model_name, device="meta")
    surgery_plan = plan(recipe, teacher, graphs=graphs)
    student = build_student(teacher, surgery_plan, graphs)
    for model in (teacher, student):
        graph = graphs.of(model, surgery_plan.site_paths, example_input(model, surgery_plan.input_size))
        from_graph, from_run = count_graph(model, graph), count(model, surgery_plan.input_size)
        assert (from_graph.params, from_graph.macs) == (from_run.params, from_run.macs)
        for path in [*surgery_plan.site_paths, *{path.rpartition(".")[0] for path in surgery_plan.site_paths}]:
            assert from_graph.module_macs(path) == from_run.module_macs(path) > 0, path
