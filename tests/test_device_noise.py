"""`hwmodel.analog.device_noise` on whole models: the tiny ViT teacher and its BiLSTM student."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hwmodel import get_device, record_workload
from hwmodel.analog import device_noise
from surgery import Recipe, build_model, build_student, plan
from tests.strategies import single_thread  # noqa: F401 - a fixture
from tests.tiny import recipe_data

pytestmark = pytest.mark.usefixtures("single_thread")

IDEAL = get_device("isaac", {"noise.ideal": True})
PROGRAMMED = get_device("isaac", {"adc.bits": 16, "noise.programming_sigma": 0.03})


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    recipe = Recipe.model_validate(recipe_data())
    torch.manual_seed(0)
    teacher = build_model(recipe.model.name, recipe.model.kwargs).eval()
    return {"teacher": teacher, "student": build_student(teacher, plan(recipe, teacher)).eval()}


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", ["teacher", "student"])
@pytest.mark.parametrize("grad", [False, True])
def test_an_ideal_device_gives_the_clean_output_bit_for_bit(models, images, name, grad):
    model = models[name]
    with torch.set_grad_enabled(grad):
        clean = model(images)
        with device_noise(model, IDEAL, seed=0):
            assert torch.equal(model(images), clean)


@pytest.mark.parametrize("name", ["teacher", "student"])
def test_the_ops_run_on_crossbars_are_the_ones_hwmodel_prices(models, images, name):
    model = models[name]
    priced = Counter(type(op).__name__ for op in record_workload(model, images).ops)
    for device in (IDEAL, PROGRAMMED):
        with torch.no_grad(), device_noise(model, device, seed=0) as crossbars:
            model(images)
        assert dict(crossbars.counts) == {kind: priced[kind] for kind in ("Gemm", "Product", "Recurrence") if priced[kind]}


@pytest.mark.parametrize("name", ["teacher", "student"])
def test_programming_noise_changes_outputs_per_seed_and_reproducibly(models, images, name):
    model = models[name]
    with torch.no_grad():
        clean = model(images)
        outputs = []
        for seed in (0, 1, 0):
            with device_noise(model, PROGRAMMED, seed=seed):
                outputs.append(model(images))
    assert not torch.equal(outputs[0], clean) and not torch.equal(outputs[0], outputs[1])
    assert torch.equal(outputs[0], outputs[2])
    assert (outputs[0] - clean).abs().max() < clean.abs().max()  # noisy, not garbage


def test_attention_products_are_exact_under_digital_only(models, images):
    """Weights are programmed per (seed, name) and reads draw nothing without read noise, so the two policies
    differ only in attention's products (op by op: tests/hwmodel/test_hw_analog.py)."""
    teacher = models["teacher"]
    with torch.no_grad():
        runs = {}
        for policy in ("write", "digital"):
            with device_noise(teacher, PROGRAMMED, seed=0, policy=policy):
                runs[policy] = teacher(images)
        for policy in ("write", "digital"):
            with device_noise(teacher, IDEAL, seed=0, policy=policy) as crossbars:
                teacher(images)
            assert crossbars.counts["Product"] == 4
    assert not torch.equal(runs["write"], runs["digital"])


class _Gram(nn.Module):
    """Only a product of two activations: nothing here is programmed ahead of time."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ x.transpose(-1, -2)


def test_an_operand_written_per_product_is_read_at_once_without_drift():
    """Weights drift between programming and reading; an operand written for one product is read as soon as it is written."""
    drifting = get_device("isaac", {"adc.bits": 16, "noise.drift_nu": 0.5})
    x, model = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(0)), _Gram()
    outputs = []
    for time_s in (0.0, 86_400.0):
        with device_noise(model, drifting, seed=0, time_s=time_s, policy="write") as crossbars:
            outputs.append(model(x))
        assert crossbars.counts == Counter({"Product": 1})
    assert torch.equal(outputs[0], outputs[1])


class _Tied(nn.Module):
    """One weight read as itself and as its transpose: two matrices on the device."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 6, generator=torch.Generator().manual_seed(0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.linear(x, self.weight.T), self.weight)


def test_a_weight_read_as_two_matrices_is_refused_not_read_from_the_first():
    model = _Tied()
    with pytest.raises(NotImplementedError, match="weight is used as two different matrices"), device_noise(model, PROGRAMMED, seed=0):
        model(torch.randn(2, 4))
