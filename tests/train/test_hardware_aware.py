"""Hardware-aware training: a step sees the weights as the crossbars hold them, and the clean weights take its gradient."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from hwmodel import get_device
from hwmodel.analog import crossbar_weights
from surgery import Recipe, build_model, build_student, plan
from surgery.train.hardware_aware import ProgrammedWeights
from tests.strategies import single_thread  # noqa: F401 - a fixture
from tests.tiny import recipe_data

pytestmark = pytest.mark.usefixtures("single_thread")
DEVICE = get_device("isaac", {"noise.programming_sigma": 0.05})


@pytest.fixture(scope="module")
def student() -> nn.Module:
    recipe = Recipe.model_validate(recipe_data())
    torch.manual_seed(0)
    teacher = build_model(recipe.model.name, recipe.model.kwargs).eval()
    return build_student(teacher, plan(recipe, teacher)).eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def test_the_weights_perturbed_are_every_weight_the_device_programs_lstms_included(student, images):
    views = crossbar_weights(student, DEVICE, images[:1])
    lstm_weights = {name for name, _ in student.named_parameters() if ".weight_ih_" in name or ".weight_hh_" in name}
    linear_weights = {f"{name}.weight" for name, module in student.named_modules() if isinstance(module, nn.Linear)}
    assert lstm_weights and lstm_weights | linear_weights | {"patch_embed.proj.weight"} == set(views)


def test_inside_a_step_weights_are_programmed_and_afterwards_exactly_clean(student, images):
    model = copy.deepcopy(student)
    clean = {name: p.detach().clone() for name, p in model.named_parameters()}
    programmed = ProgrammedWeights(model, DEVICE, images[:1])
    with programmed():
        inside = {name: p.detach().clone() for name, p in model.named_parameters()}
    for name, value in clean.items():
        assert torch.equal(dict(model.named_parameters())[name], value)
        if name in programmed.weights:
            relative = ((inside[name] - value).norm() / value.norm()).item()
            assert 1e-3 < relative < 0.2, name  # 5 % per cell, spread over the slices of each 16-bit value
        else:
            assert torch.equal(inside[name], value), name  # biases, norms and embeddings stay digital


def test_the_gradient_is_the_programmed_weights_and_lands_on_the_clean_ones(images):
    layer = nn.Linear(32, 8)
    x = torch.randn(16, 32)
    programmed = ProgrammedWeights(layer, DEVICE, x[:1])
    with programmed():
        held = layer.weight.detach().clone()
        (layer(x).square().sum()).backward()
    expected = 2 * ((x @ held.T + layer.bias.detach()).T @ x)
    assert torch.allclose(layer.weight.grad, expected, rtol=1e-5, atol=1e-4)
    assert not torch.equal(held, layer.weight.detach())


def test_programmings_follow_torchs_global_generator(images):
    layer = nn.Linear(32, 8)
    programmed = ProgrammedWeights(layer, DEVICE, torch.randn(1, 32))
    draws = []
    for _ in range(2):
        torch.manual_seed(3)
        with programmed():
            draws.append(layer.weight.detach().clone())
    assert torch.equal(*draws)
