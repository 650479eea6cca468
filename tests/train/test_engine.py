"""The Engine's bookkeeping: gradient accumulation is a bigger batch, the schedule follows the recipe."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from surgery.data import build_loaders
from surgery.recipe import FitStage, SyntheticData
from surgery.train import Engine, init_distributed
from surgery.train.metrics import MetricsLog
from surgery.train.objectives import ce_objective

DATA = SyntheticData(num_samples=32, num_classes=3)


class Records(MetricsLog):
    def __init__(self) -> None:
        super().__init__(None)
        self.steps: list[dict] = []

    def write(self, record: dict) -> None:
        if record["kind"] == "step":
            self.steps.append(record)


def train(batch: int, accum: int, **stage_options) -> tuple[nn.Module, Records]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 16), nn.GELU(), nn.Linear(16, 3))
    options = {"epochs": 1, "lr": 1e-2, "warmup_epochs": 0, **stage_options}
    stage = FitStage(batch_size=batch, grad_accum_steps=accum, **options)
    loaders = build_loaders(DATA, (3, 4, 4), batch // accum, seed=0)
    log = Records()
    Engine(
        model, list(model.named_parameters()), stage, loaders, init_distributed("cpu"), label="fit", stage_index=0,
        objective=ce_objective(stage), evaluate=lambda m: {}, save=lambda *a: None, log=log,
    ).run()
    return model, log


def test_accumulating_two_half_batches_equals_one_full_batch():
    whole, whole_log = train(batch=16, accum=1)
    halves, halves_log = train(batch=16, accum=2)
    assert len(whole_log.steps) == len(halves_log.steps) == 2
    for a, b in zip(whole.parameters(), halves.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_warmup_then_cosine_reaches_min_lr():
    _, log = train(batch=4, accum=1, warmup_epochs=0.5, warmup_lr=1e-4, min_lr=1e-3)
    lrs = [step["lr"] for step in log.steps]
    assert len(lrs) == 8
    assert lrs[0] < lrs[3] and max(lrs) <= 1e-2 + 1e-12
    assert lrs[-1] < lrs[4] and min(lrs[4:]) >= 1e-3 - 1e-12


def test_the_optimizer_gets_lr_scaled_by_batch_over_lr_base_batch():
    _, log = train(batch=4, accum=2, lr=1e-2, lr_base_batch=16, scheduler="none")
    assert [step["lr"] for step in log.steps] == pytest.approx([2.5e-3] * 8)  # 1e-2 x 4 / 16: the global batch, accumulation counted
