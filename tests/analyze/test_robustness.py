"""The settings of a robustness sweep: which devices they build, and the durations the command reads."""

from __future__ import annotations

import pytest

from hwmodel import get_device
from surgery.analyze.robustness import Measured, Robustness, Setting, parse_duration, sweep
from surgery.errors import SurgeryError

ISAAC = get_device("isaac", {"noise.read_sigma": 0.01, "noise.stuck_off_rate": 0.001})


def test_a_sweep_starts_with_the_ideal_device_then_sigmas_then_times_per_policy():
    settings = sweep(ISAAC, ["write", "digital"], [0.0, 0.05], [3600.0], drift_nu=0.05)
    assert settings[0].ideal and settings[0].policy is None
    rows = [(s.policy, s.programming_sigma, s.drift_nu, s.time_s) for s in settings[1:]]
    assert rows == [
        ("write", 0.0, 0.05, 0.0),
        ("write", 0.05, 0.05, 0.0),
        ("write", 0.0, 0.05, 3600.0),  # drift at the device's own sigma (0 for isaac)
        ("digital", 0.0, 0.05, 0.0),
        ("digital", 0.05, 0.05, 0.0),
        ("digital", 0.0, 0.05, 3600.0),
    ]


def test_drift_times_on_a_device_that_does_not_drift_are_refused():
    with pytest.raises(SurgeryError, match="does not drift"):
        sweep(ISAAC, ["write"], [], [3600.0])


def test_a_setting_changes_sigma_and_drift_and_keeps_the_devices_other_noise():
    device = Setting("write", 0.02, 0.1, 60.0).device(ISAAC)
    noise = device.noise
    assert (noise.programming_sigma, noise.drift_nu, noise.read_sigma, noise.stuck_off_rate, noise.ideal) == (0.02, 0.1, 0.01, 0.001, False)
    assert device.adc == ISAAC.adc
    assert Setting(None, 0.0, 0.0, 0.0, ideal=True).device(ISAAC).noise.ideal


def test_a_setting_the_device_refuses_is_a_surgery_error():
    with pytest.raises(SurgeryError, match="programming_sigma"):
        Setting("write", 2.0, 0.0, 0.0).device(ISAAC)


def test_the_json_gives_mean_and_sample_std_per_setting_and_no_std_from_one_seed():
    settings = [Setting(None, 0.0, 0.0, 0.0, ideal=True), Setting("write", 0.1, 0.0, 0.0)]
    teacher = [[Measured(90.0, 1.0), Measured(90.0, 1.0)], [Measured(80.0, 0.9), Measured(84.0, 0.8)]]
    report = Robustness(settings, {"teacher": teacher, "pruned": [[Measured(70.0, None)], [Measured(60.0, None)]]}).to_json()
    assert list(report) == ["settings", "teacher", "pruned"]
    assert report["teacher"][0] == {"top1_mean": 90.0, "top1_std": 0.0, "fidelity_mean": 1.0, "fidelity_std": 0.0}
    assert report["teacher"][1] == pytest.approx({"top1_mean": 82.0, "top1_std": 2.8284271, "fidelity_mean": 0.85, "fidelity_std": 0.0707107})
    assert report["pruned"][1] == {"top1_mean": 60.0, "top1_std": None}  # a run that replaced nothing has no fidelity
    assert report["settings"][1] == {"policy": "write", "programming_sigma": 0.1, "drift_nu": 0.0, "time_s": 0.0, "ideal": False}


@pytest.mark.parametrize(("text", "seconds"), [("1s", 1.0), ("1h", 3600.0), ("1d", 86400.0), ("1y", 365.25 * 86400), ("2.5min", 150.0), ("30", 30.0)])
def test_durations_read_with_their_units(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1 week", "-1s"])
def test_other_durations_are_refused(text):
    with pytest.raises(SurgeryError, match="not a duration"):
        parse_duration(text)
