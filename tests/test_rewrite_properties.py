"""What must hold after any rewrite of any small ViT: shapes, untouched weights, no attention left, gradients.

Oracles: the teacher itself (outputs, weights), the site list of the plan, a
runtime recorder of contractions, and the teacher restored into the student.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from torch import fx, nn
from torch.overrides import TorchFunctionMode
from torch.utils.module_tracker import ModuleTracker

import surgery
from far_modules import MultiHeadBiLSTM
from surgery import Plan, Recipe
from surgery.graph import TimmTracer, activation_products, module_stack, trace
from tests.strategies import (  # noqa: F401 - single_thread: a fixture, used through pytestmark
    PROPERTY_SETTINGS,
    Selection,
    VitConfig,
    attn_path,
    build_vit,
    single_thread,
    surgeries,
)

pytestmark = pytest.mark.usefixtures("single_thread")


# One fixed draw from `vit_configs`, not tests.tiny's recipe model: it has one block, so selecting every site is
# `Selection({}, {0})`, and it sets what a recipe's kwargs leave to timm (prefix tokens, pooling, fused attention).
TINY = VitConfig(
    depth=1, num_heads=2, head_dim=4, patch_size=8, grid=2, in_chans=3, class_token=True,
    reg_tokens=0, no_embed_class=False, global_pool="token", num_classes=3, fused_attn=True,
)


def recipe_for(selection: Selection, seed: int = 0) -> Recipe:
    return Recipe.model_validate(
        {"name": "prop", "seed": seed, "model": {"name": "vit_tiny_patch16_224"}, "rewrites": [{"select": selection.selector}]}
    )


def rewritten(config: VitConfig, selection: Selection, seed: int = 0) -> tuple[nn.Module, Plan, nn.Module]:
    """(teacher, plan, student) for one drawn case; the plan must pick exactly the expected sites."""
    teacher = build_vit(config)
    the_plan = surgery.plan(recipe_for(selection, seed), teacher)
    assert {step.site.index for step in the_plan.steps} == selection.expected
    return teacher, the_plan, surgery.build_student(teacher, the_plan)


def under(name: str, paths: list[str]) -> bool:
    return any(name == path or name.startswith(path + ".") for path in paths)


def example(config: VitConfig, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, *config.input_size, generator=torch.Generator().manual_seed(1))


def substitutes_of(student: nn.Module) -> dict[str, MultiHeadBiLSTM]:
    return {name: m for name, m in student.named_modules() if isinstance(m, MultiHeadBiLSTM)}


@PROPERTY_SETTINGS
@given(surgeries())
def test_output_shape_is_unchanged(case: tuple[VitConfig, Selection]) -> None:
    config, selection = case
    teacher, _, student = rewritten(*case)
    x = example(config)
    with torch.no_grad():
        before, after = teacher(x), student(x)
    assert after.shape == before.shape and torch.isfinite(after).all()


@PROPERTY_SETTINGS
@given(surgeries())
def test_parameters_outside_the_selected_sites_are_bit_identical(case: tuple[VitConfig, Selection]) -> None:
    teacher, the_plan, student = rewritten(*case)
    paths = the_plan.selected_paths
    kept = {k: v for k, v in teacher.state_dict().items() if not under(k, paths)}
    after = {k: v for k, v in student.state_dict().items() if not under(k, paths)}
    assert kept.keys() == after.keys()
    assert all(torch.equal(kept[k], after[k]) for k in kept)


@PROPERTY_SETTINGS
@given(surgeries())
def test_the_teacher_is_not_mutated(case: tuple[VitConfig, Selection]) -> None:
    config, selection = case
    teacher = build_vit(config)
    x = example(config)
    with torch.no_grad():
        output = teacher(x)
    state = {k: v.clone() for k, v in teacher.state_dict().items()}
    modules = [(name, type(m)) for name, m in teacher.named_modules()]
    surgery.build_student(teacher, surgery.plan(recipe_for(selection), teacher))
    assert [(name, type(m)) for name, m in teacher.named_modules()] == modules
    after = teacher.state_dict()
    assert after.keys() == state.keys() and all(torch.equal(state[k], after[k]) for k in state)
    with torch.no_grad():
        assert torch.equal(teacher(x), output)


@PROPERTY_SETTINGS
@given(surgeries())
def test_one_substitute_per_selected_site(case: tuple[VitConfig, Selection]) -> None:
    config, selection = case
    _, the_plan, student = rewritten(*case)
    selected = [attn_path(i) for i in sorted(selection.expected)]
    found = substitutes_of(student)
    assert len(found) == len(selected) == len(the_plan.steps)
    assert sorted(next(p for p in selected if under(name, [p])) for name in found) == selected
    unselected = [attn_path(i) for i in range(config.depth) if i not in selection.expected]
    assert all(type(student.get_submodule(p)).__name__ == "Attention" for p in unselected)


class ProductRecorder(TorchFunctionMode):
    """Records every contraction of two non-weight tensors run during a forward, with the modules running it."""

    CONTRACTIONS = {
        torch.matmul,
        torch.Tensor.matmul,
        torch.Tensor.__matmul__,
        torch.Tensor.__rmatmul__,
        torch.bmm,
        torch.Tensor.bmm,
        torch.baddbmm,
        torch.einsum,
        F.scaled_dot_product_attention,
    }

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.weights = {id(t) for t in (*model.parameters(), *model.buffers())}
        self.tracker = ModuleTracker()
        self.products: list[set[str]] = []  # per product: paths of the modules it ran in

    def __enter__(self) -> ProductRecorder:
        self.tracker.__enter__()
        return super().__enter__()

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self.tracker.__exit__(*exc)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.CONTRACTIONS:
            operands = args[1] if func is torch.einsum and len(args) == 2 else args[:3]
            activations = [a for a in operands if isinstance(a, torch.Tensor) and id(a) not in self.weights]
            if len(activations) >= 2:
                self.products.append({p.partition(".")[2] for p in self.tracker.parents if "." in p})
        return func(*args, **(kwargs or {}))


def run_recorded(model: nn.Module, x: torch.Tensor) -> list[set[str]]:
    with torch.no_grad(), ProductRecorder(model) as recorder:
        model(x)
    return recorder.products


@PROPERTY_SETTINGS
@given(surgeries())
def test_no_activation_product_runs_at_a_selected_site(case: tuple[VitConfig, Selection]) -> None:
    config, _ = case
    teacher, the_plan, student = rewritten(*case)
    selected = the_plan.selected_paths
    x = example(config)
    teacher_products, student_products = run_recorded(teacher, x), run_recorded(student, x)
    assert Counter(p for owners in teacher_products for p in owners if p.endswith(".attn")) == {
        site.path: len(site.products) for site in the_plan.sites
    }
    assert not [owners for owners in student_products if any(under(p, selected) for p in owners)]
    expected = {site.path: len(site.products) for site in the_plan.sites if site.path not in selected}
    assert Counter(p for owners in student_products for p in owners if p.endswith(".attn")) == expected


class SubstituteLeafTracer(TimmTracer):
    """The library's tracer, with substitutes kept opaque (they hold recurrent ops, not products)."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return isinstance(module, MultiHeadBiLSTM) or super().is_leaf_module(module, qualified_name)


def trace_around_substitutes(model: nn.Module) -> fx.GraphModule:
    parameters = list(inspect.signature(model.forward).parameters.values())[1:]
    concrete = {p.name: p.default for p in parameters if p.default is not p.empty}
    tracer = SubstituteLeafTracer()
    graph = tracer.trace(model, concrete_args=concrete)
    return fx.GraphModule(tracer.root, graph)


@PROPERTY_SETTINGS
@given(surgeries())
def test_no_activation_product_is_left_in_the_students_graph(case: tuple[VitConfig, Selection]) -> None:
    _, the_plan, student = rewritten(*case)
    selected = the_plan.selected_paths
    owners = Counter(module_stack(node)[-1] for node in activation_products(trace_around_substitutes(student)))
    assert not [path for path in owners if under(path, selected)]
    assert owners == {site.path: len(site.products) for site in the_plan.sites if site.path not in selected}


def test_the_student_itself_can_be_traced_and_has_no_product_at_its_sites() -> None:
    config = dataclasses.replace(TINY, depth=2, fused_attn=False)
    _, the_plan, student = rewritten(config, Selection({"layers": [1]}, frozenset({1})))
    owners = {module_stack(node)[-1] for node in activation_products(trace(student))}
    assert owners == {"blocks.0.attn"}


@PROPERTY_SETTINGS
@given(surgeries(max_depth=2))
def test_the_same_recipe_gives_the_same_student(case: tuple[VitConfig, Selection]) -> None:
    teacher, the_plan, first = rewritten(*case)
    torch.randn(100)  # moving the global generator must not matter
    second = surgery.build_student(teacher, the_plan)
    a, b = first.state_dict(), second.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@settings(PROPERTY_SETTINGS, max_examples=6)  # three rewrites per example
@given(surgeries(max_depth=2))
def test_a_sites_substitute_depends_only_on_seed_and_path(case: tuple[VitConfig, Selection]) -> None:
    config, selection = case
    _, _, student = rewritten(config, selection)
    _, _, everything = rewritten(config, Selection({}, frozenset(range(config.depth))))
    _, _, reseeded = rewritten(config, selection, seed=1)
    alone, full, other = substitutes_of(student), substitutes_of(everything), substitutes_of(reseeded)
    for name, module in alone.items():
        same = full[name].state_dict()
        assert all(torch.equal(v, same[k]) for k, v in module.state_dict().items())
        assert not torch.equal(module.in_proj.weight, other[name].in_proj.weight)


@PROPERTY_SETTINGS
@given(surgeries())
def test_gradients_reach_every_substitute_parameter(case: tuple[VitConfig, Selection]) -> None:
    config, _ = case
    _, _, student = rewritten(*case)
    student(example(config)).square().mean().backward()
    for name, module in substitutes_of(student).items():
        grads = {k: p.grad for k, p in module.named_parameters()}
        assert all(g is not None and torch.isfinite(g).all() for g in grads.values()), name
        assert module.in_proj.weight.grad.abs().sum() > 0 and module.out_proj.weight.grad.abs().sum() > 0, name


@PROPERTY_SETTINGS
@given(surgeries())
def test_putting_the_originals_back_restores_the_teacher(case: tuple[VitConfig, Selection]) -> None:
    config, _ = case
    teacher, the_plan, student = rewritten(*case)
    for path in the_plan.selected_paths:
        student.set_submodule(path, copy.deepcopy(teacher.get_submodule(path)))
    x = example(config)
    with torch.no_grad():
        torch.testing.assert_close(student(x), teacher(x), rtol=0, atol=0)


def test_the_student_keeps_the_teachers_mode_everywhere() -> None:
    teacher, _, student = rewritten(TINY, Selection({}, frozenset({0})))
    assert not teacher.training
    assert [name for name, m in student.named_modules() if m.training] == []


class SelfAttentionMixer(nn.Module):
    """A substitute that secretly is attention: both product oracles above must see it."""

    @classmethod
    def from_site(cls, spec: object, *, source: nn.Module | None = None) -> SelfAttentionMixer:
        return cls()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ x.transpose(-2, -1)).softmax(-1) @ x  # (B, N, C)


def test_the_product_oracles_see_products_inside_a_substitute(monkeypatch: pytest.MonkeyPatch) -> None:
    from far_modules import SUBSTITUTES

    monkeypatch.setattr(SUBSTITUTES, "_items", {**SUBSTITUTES._items, "self_attention_mixer": SelfAttentionMixer})
    teacher = build_vit(dataclasses.replace(TINY, depth=2))
    recipe = Recipe.model_validate(
        {"name": "oracle", "model": {"name": "x"}, "rewrites": [{"select": {"layers": [1]}, "substitute": "self_attention_mixer"}]}
    )
    student = surgery.build_student(teacher, surgery.plan(recipe, teacher))
    ran = Counter(p for owners in run_recorded(student, example(TINY)) for p in owners if p.endswith(".attn"))
    traced = Counter(module_stack(node)[-1] for node in activation_products(trace_around_substitutes(student)))
    assert ran == {"blocks.0.attn": 1, "blocks.1.attn": 2}
    assert traced == {"blocks.0.attn": 1, "blocks.1.attn.substitute": 2}
