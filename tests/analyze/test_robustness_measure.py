"""`measure_robustness` on the tiny digits run: a shortcut taken gives exactly what measuring would."""

from __future__ import annotations

import pytest

from hwmodel import get_device
from hwmodel.analog import Crossbars
from surgery.analyze import robustness
from surgery.analyze.robustness import Setting, measure_robustness
from surgery.runs import load_evaluated, load_run
from surgery.runs.evaluate import validation_loader
from tests.strategies import single_thread  # noqa: F401 - a fixture

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("single_thread")]
ISAAC = get_device("isaac")
SETTINGS = [Setting(None, 0.0, 0.0, 0.0, ideal=True)] + [Setting(policy, sigma, 0.0, 0.0) for policy in ("write", "digital") for sigma in (0.0, 0.1)]


def test_deterministic_settings_and_a_policy_the_model_never_meets_are_measured_once(finished_run, monkeypatch):
    measured = []
    noisy = robustness._noisy
    monkeypatch.setattr(robustness, "_noisy", lambda model, *rest: measured.append(model) or noisy(model, *rest))
    result = measure_robustness(finished_run.run, ISAAC, SETTINGS, seeds=2, images=16)
    teacher, student = result.measured["teacher"], result.measured["student"]
    calls = [sum(1 for model in measured if model is m) for m in {id(m): m for m in measured}.values()]
    assert calls == [1 + 1 + 2 + 1 + 2, 1 + 1 + 2, 1 + 1 + 2]  # teacher runs attention's products; the FAR students do not
    assert teacher[2] != teacher[4] and student[2] == student[4]  # σ = 10 %: write and digital differ only for the teacher
    assert teacher[1][0] == teacher[1][1] and teacher[2][0] != teacher[2][1]  # σ = 0 draws nothing; σ = 10 % does


def test_a_reused_measurement_equals_measuring_it(finished_run):
    result = measure_robustness(finished_run.run, ISAAC, SETTINGS, seeds=2, images=16)
    student, teacher = load_evaluated(finished_run.run.root, "student"), load_run(finished_run.run.root, "teacher")
    loader = validation_loader(finished_run.run, teacher, 256, 16)
    blocks = [f"blocks.{i}" for i in range(len(teacher.blocks))]
    for index, seed in ((3, 0), (4, 1)):  # digital σ = 0 (seed 0 stands for both), digital σ = 10 % (write's reads)
        setting = SETTINGS[index]
        crossbars = Crossbars(student, setting.device(ISAAC), seed, time_s=0.0, policy="digital")
        assert robustness._noisy(student, teacher, blocks, loader, crossbars) == result.measured["student"][index][seed]
