"""Robustness: top-1 of a finished run's models computed on a noisy crossbar device, mean and spread over Monte-Carlo seeds.

A setting is one device (the recipe's, with its programming sigma or its drift time
changed) and one policy for activation x activation products. Each model is run through
the device (`hwmodel.device_noise`) once per seed: a seed is one programming of every
weight and one stream of read noise. The first setting is always the ideal device, whose
top-1 is the clean model's, bit for bit.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from pydantic import ValidationError
from torch import nn
from torch.utils.data import DataLoader

from hwmodel import Device, Policy
from hwmodel.analog import device_noise
from hwmodel.device import Noise
from surgery.errors import SurgeryError
from surgery.models import one_line, takes_tokens
from surgery.recipe import load_recipe
from surgery.runs.evaluate import validation_loader
from surgery.runs.replay import load_run
from surgery.runs.rundir import RunDir
from surgery.train.checkpoint import read_json
from surgery.train.distributed import DistContext, init_distributed
from surgery.train.evaluation import top1

Progress = Callable[[str, "Setting", int, float], None]
"""Called after each measurement with (model, setting, seed, top-1)."""


@dataclass(frozen=True)
class Setting:
    """One device and policy: the recipe's device with `programming_sigma`, `drift_nu` and the read time `time_s` set."""

    policy: Policy | None
    """How activation x activation products run; None on the ideal device, where nothing is analog."""
    programming_sigma: float
    """Relative standard deviation of a cell's conductance after programming (0.02: 2 % of the programmed level)."""
    drift_nu: float
    """Drift exponent: G(t) = G(t0) (t / t0) ** -nu."""
    time_s: float
    """Seconds from programming the weights to reading them."""
    ideal: bool = False
    """The ideal device: products as torch computes them, no quantisation or noise."""

    def device(self, base: Device) -> Device:
        """`base` with this setting's noise; every other noise field (read sigma, stuck cells, ADC range) is `base`'s."""
        if self.ideal:
            return base.model_copy(update={"noise": Noise(ideal=True)})
        changed = {"ideal": False, "programming_sigma": self.programming_sigma, "drift_nu": self.drift_nu}
        try:
            noise = Noise.model_validate({**base.noise.model_dump(), **changed})
        except ValidationError as error:
            raise SurgeryError(f"setting {self.label()}: {one_line(error)}") from None
        return base.model_copy(update={"noise": noise})

    def label(self) -> str:
        if self.ideal:
            return "ideal device"
        drift = f", t={_duration(self.time_s)} (nu={self.drift_nu:g})" if self.time_s > 0 else ""
        return f"{self.policy}, σ={self.programming_sigma:.0%}{drift}"

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Robustness:
    """Top-1 (%) of each model the run has, one list of per-seed values per setting; `missing` says why a model is absent."""

    settings: list[Setting]
    top1: dict[str, list[list[float]]]
    missing: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, list]:
        """`{"settings": [...], "teacher": [...], ...}`, each model's list aligned with the settings."""
        summaries = {name: [_summary(values) for values in rows] for name, rows in self.top1.items()}
        return {"settings": [s.to_json() for s in self.settings], **summaries}


def sweep(device: Device, policies: Sequence[Policy], sigmas: Sequence[float], times_s: Sequence[float], drift_nu: float | None = None) -> list[Setting]:
    """The ideal device, then per policy: each programming sigma read at once, and each read time at the device's sigma.

    Raises:
        SurgeryError: read times are asked for on a device that does not drift (drift_nu and its spread both 0).
    """
    noise = device.noise
    nu = noise.drift_nu if drift_nu is None else drift_nu
    if times_s and nu == 0 and noise.drift_nu_sigma == 0:
        raise SurgeryError("drift times on a device that does not drift (noise.drift_nu = 0, as published for ReRAM): give a drift exponent (--drift-nu)")
    settings = [Setting(None, 0.0, 0.0, 0.0, ideal=True)]
    for policy in policies:
        settings += [Setting(policy, sigma, nu, 0.0) for sigma in sigmas]
        settings += [Setting(policy, noise.programming_sigma, nu, time_s) for time_s in times_s]
    return settings


def measure_robustness(
    run: RunDir, device: Device, settings: Sequence[Setting], seeds: int, *, images: int | None = None, batch_size: int = 256,
    progress: Progress | None = None,
) -> Robustness:
    """Top-1 of `run`'s models on the recipe's validation split (its first `images`, all when None), for every setting
    and seeds 0 .. `seeds` - 1.

    Raises:
        SurgeryError: the run has no data section, or its models are text encoders (no top-1).

    Example:
        >>> from pathlib import Path
        >>> from hwmodel import get_device
        >>> device = get_device("isaac")
        >>> settings = sweep(device, ["write"], [0.0, 0.05], [])
        >>> measure_robustness(RunDir(Path("runs/quickstart")), device, settings, seeds=3).to_json()["pruned"]  # doctest: +SKIP
    """
    models, missing = run_models(run)
    loader = validation_loader(run, next(iter(models.values())), batch_size, images)
    ctx = init_distributed("cpu")
    top1s = {}
    for name, model in models.items():
        top1s[name] = [[_noisy_top1(model, loader, setting.device(device), setting, seed, ctx, name, progress) for seed in range(seeds)] for setting in settings]
    return Robustness(list(settings), top1s, missing)


def run_models(run: RunDir) -> tuple[dict[str, nn.Module], dict[str, str]]:
    """The run's models by report row (teacher, and its final student as `pruned` if it pruned, else `student`), and why
    the others are absent: a run keeps only its final student, so a pruned run has no unpruned one on disk."""
    report = read_json(run.report_json, "a run report") if run.report_json.exists() else {}
    final = "pruned" if "pruned" in report else "student"
    models = {"teacher": load_run(run.root, "teacher").eval(), final: load_run(run.root).eval()}
    if takes_tokens(models["teacher"]):
        raise SurgeryError(f"{run.root}: a text encoder has no top-1 to measure robustness by")
    missing = {"student": "the run pruned its student and keeps only the pruned one"} if final == "pruned" else {"pruned": "the run did not prune"}
    if load_recipe(run.recipe).model.from_run is not None:  # a transfer's teacher: a new classifier, never trained on this data
        del models["teacher"]
        missing["teacher"] = "a transfer's teacher has an untrained classifier"
    return models, missing


def _noisy_top1(model: nn.Module, loader: DataLoader, device: Device, setting: Setting, seed: int, ctx: DistContext, name: str, progress: Progress | None) -> float:
    with device_noise(model, device, seed, time_s=setting.time_s, policy=setting.policy or "write"):
        value = top1(model, loader, ctx)
    if progress is not None:
        progress(name, setting, seed, value)
    return value


def _summary(values: list[float]) -> dict[str, float | None]:
    """Mean and sample standard deviation (None from one seed: no spread can be estimated)."""
    return {"top1_mean": statistics.fmean(values), "top1_std": statistics.stdev(values) if len(values) > 1 else None}


_UNITS = (("y", 365.25 * 86400), ("d", 86400), ("h", 3600), ("min", 60), ("s", 1))
_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?(?:e[+-]?\d+)?)\s*(y|d|h|min|s)?\s*")


def parse_duration(text: str) -> float:
    """Seconds in `text`: a number with an optional unit s, min, h, d or y (365.25 days); a bare number is seconds.

    Example:
        >>> parse_duration("1h"), parse_duration("1y") / 86400, parse_duration("30")
        (3600.0, 365.25, 30.0)
    """
    match = _DURATION.fullmatch(text)
    if match is None:
        raise SurgeryError(f"{text!r}: not a duration (a number with an optional unit: s, min, h, d, y)")
    return float(match[1]) * dict(_UNITS)[match[2] or "s"]


def _duration(seconds: float) -> str:
    """`seconds` in the largest unit it fills at least once (3600 -> 1h)."""
    unit, size = next(((u, s) for u, s in _UNITS if seconds >= s), _UNITS[-1])
    return f"{seconds / size:g}{unit}"
