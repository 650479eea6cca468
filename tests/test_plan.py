"""Planning the paper's recipe on the meta device, and refusing bad recipes before any work, with file:line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import timm
import torch
from torch import nn

from far_modules import MultiHeadBiLSTM
from surgery import Counts, Plan, Recipe, SurgeryError, build_model, build_student, count, load_recipe, plan
from tests.strategies import single_thread  # noqa: F401 - a fixture, used through pytestmark

pytestmark = pytest.mark.usefixtures("single_thread")

REPO = Path(__file__).resolve().parents[1]
DEIT_FAR = REPO / "recipes" / "deit_far.yaml"


@pytest.fixture(scope="module")
def deit_far() -> tuple[Recipe, nn.Module, Plan]:
    recipe = load_recipe(DEIT_FAR)
    teacher = build_model(recipe.model.name, recipe.model.kwargs, device="meta")
    return recipe, teacher, plan(recipe, teacher)


@pytest.fixture(scope="module")
def far_counts(deit_far: tuple[Recipe, nn.Module, Plan]) -> tuple[Counts, Counts]:
    """(teacher, student) counts at 224 px, all on the meta device."""
    _, teacher, the_plan = deit_far
    student = build_student(teacher, the_plan)
    return count(teacher, the_plan.input_size), count(student, the_plan.input_size)


def test_deit_far_plans_twelve_bilstm_steps(deit_far: tuple[Recipe, nn.Module, Plan]) -> None:
    _, _, the_plan = deit_far
    assert (the_plan.model, the_plan.input_size, the_plan.seed) == ("deit_tiny_patch16_224", (3, 224, 224), 42)
    assert len(the_plan.sites) == 12 and len(the_plan.steps) == 12
    assert the_plan.selected_paths == [f"blocks.{i}.attn" for i in range(12)]
    for step in the_plan.steps:
        assert (step.substitute, step.rewrite_index) == ("bilstm", 0)
        assert step.params == {"heads": "auto", "hidden_size": "auto", "init": "attention"}
        assert (step.site.dim, step.site.num_heads, step.site.head_dim, step.site.seq_len) == (192, 3, 64, 197)


def test_a_plan_is_immutable(deit_far: tuple[Recipe, nn.Module, Plan]) -> None:
    _, _, the_plan = deit_far
    with pytest.raises(dataclasses.FrozenInstanceError):
        the_plan.steps = ()  # type: ignore[misc]
    assert isinstance(the_plan.steps, tuple) and isinstance(the_plan.sites, tuple)


def test_planning_mutates_nothing(deit_far: tuple[Recipe, nn.Module, Plan]) -> None:
    _, teacher, _ = deit_far
    assert all(type(block.attn).__name__ == "Attention" for block in teacher.blocks)
    assert not any(isinstance(m, MultiHeadBiLSTM) for m in teacher.modules())


def test_far_tiny_matches_the_paper(far_counts: tuple[Counts, Counts]) -> None:
    _, student = far_counts
    assert student.params == pytest.approx(7.7e6, rel=0.02)
    assert student.macs == pytest.approx(1.45e9, rel=0.03)


def test_deit_tiny_matches_the_paper(far_counts: tuple[Counts, Counts]) -> None:
    teacher, _ = far_counts
    assert teacher.params == pytest.approx(5.7e6, rel=0.01)
    assert teacher.macs == pytest.approx(1.25e9, rel=0.01)


def test_far_tiny_changes_only_the_attention(far_counts: tuple[Counts, Counts]) -> None:
    teacher, student = far_counts
    per_site = 311_040 - (192 * 576 + 576 + 192 * 192 + 192)  # BiLSTM substitute minus timm Attention
    assert student.params - teacher.params == 12 * per_site
    assert student.module_macs("blocks.5.mlp") == teacher.module_macs("blocks.5.mlp")


# A small model keeps the error tests fast; the line numbers below are this text's.
BAD = """\
name: bad
model:
  name: vit_tiny_patch16_224
  kwargs: {{img_size: 32, patch_size: 8, depth: 2}}
rewrites:
  - select:
      path: "{path}"
    substitute: {substitute}
    params:
      {param}
"""


def planned(tmp_path: Path, path: str = "blocks.*.attn", substitute: str = "bilstm", param: str = "heads: auto") -> Plan:
    recipe_file = tmp_path / "bad.yaml"
    recipe_file.write_text(BAD.format(path=path, substitute=substitute, param=param))
    recipe = load_recipe(recipe_file)
    return plan(recipe, build_model(recipe.model.name, recipe.model.kwargs, device="meta"))


def test_the_error_recipe_is_valid_as_written(tmp_path: Path) -> None:
    assert len(planned(tmp_path).steps) == 2


def test_heads_not_dividing_the_width_is_located_at_params(tmp_path: Path) -> None:
    with pytest.raises(SurgeryError) as caught:
        planned(tmp_path, param="heads: 5")
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'bad.yaml'}:9:")
    assert "heads=5" in message and "192" in message and "blocks.0.attn" in message


@pytest.mark.parametrize(
    "param",
    [
        "hedas: 3",
        "hidden_size: 0",
        "heads: three",
        "init: Attention",
        "hidden_size: 2.5",
    ],
)
def test_bad_substitute_options_are_located_at_params(tmp_path: Path, param: str) -> None:
    with pytest.raises(SurgeryError) as caught:
        planned(tmp_path, param=param)
    assert str(caught.value).startswith(f"{tmp_path / 'bad.yaml'}:9:")


def test_unknown_substitute_is_located_with_suggestion(tmp_path: Path) -> None:
    with pytest.raises(SurgeryError) as caught:
        planned(tmp_path, substitute="bilstn")
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'bad.yaml'}:8:") and "did you mean 'bilstm'" in message


def test_selector_matching_nothing_lists_the_sites(tmp_path: Path) -> None:
    with pytest.raises(SurgeryError) as caught:
        planned(tmp_path, path="block.*.attn")
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'bad.yaml'}:6:")
    assert "0:blocks.0.attn (Attention), 1:blocks.1.attn (Attention)" in message


def test_a_recipe_built_in_code_gets_unlocated_errors() -> None:
    recipe = Recipe.model_validate(
        {"name": "code", "model": {"name": "vit_tiny_patch16_224"}, "rewrites": [{"params": {"heads": 5}}]}
    )
    model = build_model("vit_tiny_patch16_224", {"img_size": 32, "patch_size": 8, "depth": 1}, device="meta")
    with pytest.raises(SurgeryError, match=r"^substitute 'bilstm' at site blocks\.0\.attn: heads=5"):
        plan(recipe, model)


def test_the_last_rewrite_decides_a_sites_substitute_options() -> None:
    recipe = Recipe.model_validate(
        {
            "name": "layers",
            "model": {"name": "vit_tiny_patch16_224"},
            "rewrites": [{"params": {"hidden_size": 8}}, {"select": {"layers": "1"}, "params": {"hidden_size": 4}}],
        }
    )
    model = build_model("vit_tiny_patch16_224", {"img_size": 32, "patch_size": 8, "depth": 3}, device="meta")
    steps = plan(recipe, model).steps
    assert [(s.site.index, s.rewrite_index, s.params) for s in steps] == [
        (0, 0, {"hidden_size": 8}),
        (1, 1, {"hidden_size": 4}),
        (2, 0, {"hidden_size": 8}),
    ]


def test_unknown_timm_model_suggests_close_names() -> None:
    with pytest.raises(SurgeryError, match="did you mean deit_tiny_patch16_224"):
        build_model("deit_tiny_patch16_22")


def test_bad_timm_kwargs_are_a_surgery_error() -> None:
    with pytest.raises(SurgeryError, match="vit_tiny_patch16_224"):
        build_model("vit_tiny_patch16_224", {"num_heads": 5}, device="meta")


@pytest.mark.parametrize("name", ["deit_tiny_patch16_224", "swin_tiny_patch4_window7_224", "levit_128", "eva02_tiny_patch14_224", "convit_tiny"])
def test_meta_models_skip_initialisation_but_keep_every_tensor(name: str) -> None:
    """Skipping the initialisers on meta builds the model timm builds: same tensors, shapes, dtypes and trainability."""

    def tensors(model: nn.Module) -> list[tuple[str, torch.Size, torch.dtype, bool]]:
        return [(key, value.shape, value.dtype, value.requires_grad) for key, value in [*model.named_parameters(), *model.named_buffers()]]

    with torch.device("meta"):
        reference = timm.create_model(name)
    assert tensors(build_model(name, device="meta")) == tensors(reference)


def test_meta_models_cannot_load_weights() -> None:
    with pytest.raises(SurgeryError, match="meta"):
        build_model("vit_tiny_patch16_224", pretrained=True, device="meta")


def _hiera_plan(path: str | list[str]) -> Plan:
    """Hiera's mask-unit attention pools over a token order that is no raster grid: no adapter fits it."""
    from surgery.recipe import recipe_from_data

    model = {"name": "hiera_tiny_224", "kwargs": {"img_size": 64}, "input_size": [3, 64, 64]}
    recipe = recipe_from_data({"name": "r", "model": model, "rewrites": [{"select": {"path": path}}]})
    return plan(recipe, build_model(recipe.model.name, recipe.model.kwargs, device="meta"))


def test_a_glob_skips_a_site_no_adapter_fits_and_says_why() -> None:
    the_plan = _hiera_plan("*")
    assert [skip.path for skip in the_plan.skipped] == ["blocks.1.attn", "blocks.3.attn", "blocks.10.attn"]
    assert "blocks.0.attn" in the_plan.selected_paths and "blocks.1.attn" not in the_plan.selected_paths
    assert "site blocks.1.attn (MaskUnitAttention) cannot be adapted: it changes the sequence length" in the_plan.skipped[0].reason


def test_a_site_named_by_its_exact_path_is_refused_when_no_adapter_fits() -> None:
    with pytest.raises(SurgeryError, match=r"^hiera site blocks\.1\.attn \(MaskUnitAttention\) cannot be adapted"):
        _hiera_plan(["blocks.0.attn", "blocks.1.attn"])


def test_a_glob_that_selects_only_sites_no_adapter_fits_is_refused() -> None:
    with pytest.raises(SurgeryError, match=r"no selected site can be adapted: .*blocks\.1\.attn"):
        _hiera_plan("blocks.[13].attn")
