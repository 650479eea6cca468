"""AViT-style token halting around a ViT's blocks: a gate that never fires is the dense model, stopped tokens reach
nothing, every token's output weights sum to one, and the halting model rewrites and traces like the dense one."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from surgery import SurgeryError, build_model, build_student, plan
from surgery.recipe import HaltingGate, HaltStage, recipe_from_data
from surgery.rewrite.halting import HaltingBlocks, depth_prior, following, halting_of, install_halting
from surgery.train.objectives import halt_objective
from tests.strategies import PROPERTY_SETTINGS, single_thread  # noqa: F401 - a fixture, used through pytestmark
from tests.tiny import DIGITS_KWARGS, MODEL, recipe_data

pytestmark = pytest.mark.usefixtures("single_thread")
SIZE = (1, 8, 8)
NEVER = HaltingGate(gate_center=1e9)
EARLY = HaltingGate(gate_scale=1.0, gate_center=-100.0)  # every patch token stops after the first block


def digits_vit(depth: int = 3, **kwargs: object) -> nn.Module:
    torch.manual_seed(0)
    return build_model(MODEL, {**DIGITS_KWARGS, "depth": depth, **kwargs})


def images(batch: int = 4) -> torch.Tensor:
    return torch.randn(batch, *SIZE, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("kwargs", [{}, {"class_token": False, "global_pool": "avg"}, {"reg_tokens": 2}])
def test_a_gate_that_never_fires_is_the_dense_model(kwargs: dict) -> None:
    model = digits_vit(**kwargs)
    dense = model(images())
    halting = install_halting(model, NEVER, SIZE)
    assert torch.allclose(model(images()), dense, atol=1e-6)
    assert halting.trace is not None and torch.equal(halting.trace.tokens_run, torch.ones(4))


@given(center=st.floats(-4.0, 4.0), scale=st.floats(0.5, 4.0), depth=st.integers(1, 4))
@PROPERTY_SETTINGS
def test_tokens_stop_for_good_and_weigh_their_blocks_once(center: float, scale: float, depth: int) -> None:
    model = digits_vit(depth)
    halting = install_halting(model, HaltingGate(gate_scale=scale, gate_center=center), SIZE)
    model(images())
    trace = halting.trace
    kept = torch.stack(trace.kept)  # (blocks, B, N)
    assert kept[:, :, : trace.prefix_tokens].all()  # the class token runs every block
    assert not (kept[1:] & ~kept[:-1]).any()  # a stopped token never runs again
    assert torch.allclose(trace.distribution.sum(), torch.tensor(1.0), atol=1e-5)
    ran = kept[:, :, trace.prefix_tokens :].sum(0).float()
    ponder = trace.ponder[:, trace.prefix_tokens :]
    assert torch.all(ponder > ran) and torch.all(ponder <= ran + 1 + 1e-6)  # blocks run plus a remainder in (0, 1]


@pytest.mark.parametrize("rewritten", [False, True], ids=["attention", "bilstm"])
def test_stopped_tokens_reach_no_other_token(rewritten: bool) -> None:
    """Noise written into the stopped tokens' rows of a later block's input changes no output: attention gives them no
    weight as keys (a substitute does not read them) and their outputs no longer count."""
    model = digits_vit()
    install_halting(model, EARLY, SIZE)
    if rewritten:
        model = build_student(model, plan(recipe_from_data(recipe_data(trained=True)), model))
    reference = model(images())

    def noisy(_module: nn.Module, args: tuple, kwargs: dict) -> tuple:
        stopped = (kwargs["attn_mask"][:, 0, 0, :] != 0).unsqueeze(-1)
        return (args[0] + 100.0 * torch.randn_like(args[0]) * stopped,), kwargs

    handle = model.blocks[1].register_forward_pre_hook(noisy, with_kwargs=True)
    try:
        assert torch.allclose(model(images()), reference, atol=1e-5)
    finally:
        handle.remove()


def test_a_halting_teacher_rewrites_with_its_halting_and_block_names() -> None:
    model = digits_vit()
    names = [name for name, _ in model.named_parameters()]
    install_halting(model, EARLY, SIZE)
    assert [name for name, _ in model.named_parameters()] == names
    student = build_student(model, plan(recipe_from_data(recipe_data(trained=True)), model))
    assert isinstance(student.blocks, HaltingBlocks) and student.blocks is not model.blocks
    student(images())
    assert halting_of(student).trace.tokens_run.mean() == pytest.approx(1 / 3)


def test_a_student_following_its_teacher_runs_the_teachers_tokens() -> None:
    teacher = digits_vit()
    install_halting(teacher, HaltingGate(gate_scale=1.0, gate_center=-2.0), SIZE)
    student = build_student(teacher, plan(recipe_from_data(recipe_data(trained=True)), teacher))
    install_halting(student, HaltingGate(gate_center=1e9), SIZE)  # left alone, it would run every token through every block
    teacher(images())
    with following(student, teacher):
        student(images())
    mine, theirs = halting_of(student).trace, halting_of(teacher).trace
    assert all(torch.equal(a, b) for a, b in zip(mine.kept, theirs.kept)) and mine.tokens_run.mean() < 1
    assert torch.allclose(mine.distribution.sum(), torch.tensor(1.0), atol=1e-5)
    ran = torch.stack(mine.kept)[:, :, 1:].sum(0).float()
    assert torch.all(mine.ponder[:, 1:] >= ran)  # a followed token's remainder never goes negative
    student(images())
    assert halting_of(student).trace.tokens_run.mean() == 1  # outside, it halts on its own gate again


def test_a_teacher_copies_after_a_training_step() -> None:
    """The trace of a forward with gradients holds an autograd graph, which deepcopy refuses; copies leave it behind."""
    model = digits_vit()
    install_halting(model, EARLY, SIZE)
    model.train()(images()).sum().backward()
    copied = copy.deepcopy(model)
    assert halting_of(copied).trace is None and halting_of(model).trace is not None


@pytest.mark.parametrize(
    ("name", "message"), [("swin_tiny_patch4_window7_224", "SwinTransformer has none"), ("eva02_tiny_patch14_224", "Eva's `blocks` is a ModuleList")]
)
def test_models_that_do_not_run_a_blocks_sequential_are_refused(name: str, message: str) -> None:
    with pytest.raises(SurgeryError, match=message):
        install_halting(build_model(name, device="meta"), EARLY, (3, 224, 224))


def test_the_depth_prior_is_a_distribution_peaking_at_its_target() -> None:
    prior = depth_prior(6, target_depth=4.0)
    assert prior.sum().item() == pytest.approx(1.0) and prior.argmax().item() == 3


def test_the_halt_loss_is_task_plus_ponder_plus_prior() -> None:
    model = digits_vit()
    halting = install_halting(model, HaltingGate(gate_scale=1.0, gate_center=0.0), SIZE)
    stage = HaltStage(epochs=1, lr=1e-3, ponder_weight=0.1, prior_weight=0.2, target_depth=2)
    result = halt_objective(stage, halting)(model.train(), images(), torch.tensor([0, 1, 2, 3]))
    logs = result.logs
    assert logs["loss"] == pytest.approx(logs["ce"] + 0.1 * logs["ponder"] + 0.2 * logs["prior_kl"], rel=1e-5)
    result.loss.backward()
    assert model.blocks[0].mlp.fc2.bias.grad[0].abs() > 0  # the gate's channel learns from the ponder cost and prior
