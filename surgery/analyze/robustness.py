"""Robustness: top-1 of a finished run's models computed on a noisy crossbar device, mean and spread over Monte-Carlo seeds.

A setting is one device (the recipe's, with its programming sigma or its drift time
changed) and one policy for activation x activation products. Each model is run through
the device (`hwmodel.device_noise`) once per seed: a seed is one programming of every
weight and one stream of read noise. The first setting is always the ideal device, whose
top-1 is the clean model's, bit for bit.
"""

from __future__ import annotations

import difflib
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

import torch
from pydantic import ValidationError
from torch import nn
from torch.utils.data import DataLoader

from hwmodel import Device, Policy
from hwmodel.analog import Crossbars
from hwmodel.device import Noise
from surgery.errors import SurgeryError
from surgery.models import one_line, takes_tokens
from surgery.recipe import load_recipe
from surgery.rewrite.plan import block_paths
from surgery.runs.evaluate import validation_loader
from surgery.runs.record import SurgeryRecord
from surgery.runs.replay import load_evaluated, load_run
from surgery.runs.rundir import RunDir
from surgery.train.batches import predict, token_mask
from surgery.train.checkpoint import read_json
from surgery.train.distributed import init_distributed, reduce_sum
from surgery.train.evaluation import block_cosines, capture_blocks

ROWS = ("teacher", "student", "pruned")
"""The models a run can have, by report row."""
Progress = Callable[[str, "Setting", int, "Measured"], None]
"""Called after each measurement with (model, setting, seed, what was measured)."""


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
class Measured:
    """One model through one device and seed."""

    top1: float
    """Top-1 (%) on the validation images."""
    fidelity: float | None
    """Block fidelity: the cosine of each replaced block's output on the device to the clean teacher's, per token,
    averaged over tokens and then blocks (the evaluate stage's `fidelity`); None for a run that replaced nothing."""


@dataclass(frozen=True)
class Robustness:
    """Each model the run has, one list of per-seed measurements per setting; `missing` says why a model is absent."""

    settings: list[Setting]
    measured: dict[str, list[list[Measured]]]
    missing: dict[str, str] = field(default_factory=dict)

    @property
    def top1(self) -> dict[str, list[list[float]]]:
        return {name: [[m.top1 for m in seeds] for seeds in rows] for name, rows in self.measured.items()}

    def to_json(self) -> dict[str, list]:
        """`{"settings": [...], "teacher": [...], ...}`, each model's list aligned with the settings: top-1 and block
        fidelity, mean and sample std over seeds."""
        summaries = {name: [_summaries(seeds) for seeds in rows] for name, rows in self.measured.items()}
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
    only: Sequence[str] | None = None, progress: Progress | None = None,
) -> Robustness:
    """Top-1 and block fidelity of `run`'s models (those named in `only`, all when None) on the recipe's validation split
    (its first `images`, all when None), for every setting and seeds 0 .. `seeds` - 1.

    Two shortcuts give exactly what measuring would: a setting whose device draws nothing random
    (`Noise.draws`) is measured once and stands for every seed, and a model that runs no activation x activation
    product (a FAR student) is measured under one policy only, since the other computes the very same reads.

    Raises:
        SurgeryError: the run has no data section, its models are text encoders (no top-1), or `only` names a model that
            is no report row or that the run does not have.

    Example:
        >>> from pathlib import Path
        >>> from hwmodel import get_device
        >>> device = get_device("isaac")
        >>> settings = sweep(device, ["write"], [0.0, 0.05], [])
        >>> measure_robustness(RunDir(Path("runs/quickstart")), device, settings, seeds=3).to_json()["pruned"]  # doctest: +SKIP
    """
    models, missing = run_models(run)
    teacher = models["teacher"] if "teacher" in models else load_run(run.root, "teacher").eval()  # the fidelity reference
    if only is not None:
        models, missing = _only(models, missing, only)
    blocks = block_paths(site.path for site in SurgeryRecord.from_json(read_json(run.record, "a surgery record"), run.record).sites)
    loader = validation_loader(run, teacher, batch_size, images)
    measured = {}
    for name, model in models.items():
        sampler = _Sampler(model, teacher, blocks, loader, device, lambda setting, seed, m, name=name: progress and progress(name, setting, seed, m))
        measured[name] = [[sampler.measure(setting, seed) for seed in range(seeds)] for setting in settings]
    return Robustness(list(settings), measured, missing)


def run_models(run: RunDir) -> tuple[dict[str, nn.Module], dict[str, str]]:
    """The run's models by report row (teacher, student, pruned), and why the others are absent. Each student is the one
    its row measured (`load_evaluated`); a run from before those were kept has only its final one."""
    report = read_json(run.report_json, "a run report") if run.report_json.exists() else {}
    final = "pruned" if "pruned" in report else "student"
    models = {"teacher": load_run(run.root, "teacher").eval()}
    if takes_tokens(models["teacher"]):
        raise SurgeryError(f"{run.root}: a text encoder has no top-1 to measure robustness by")
    missing = {}
    if load_recipe(run.recipe).model.from_run is not None:  # a transfer's teacher: a new classifier, never trained on this data
        del models["teacher"]
        missing["teacher"] = "a transfer's teacher has an untrained classifier"
    for row in ROWS[1:]:
        if run.evaluated_weights(row).exists():
            models[row] = load_evaluated(run.root, row)
        elif row == final:
            models[row] = load_run(run.root)
        elif row in report:
            missing[row] = f"the run kept no weights for it (no {run.evaluated_weights(row).relative_to(run.root)}: made before rows were kept)"
        else:
            missing[row] = "the run did not prune" if row == "pruned" else "the run evaluated no unpruned student"
    return models, missing


def model_names(names: Sequence[str]) -> list[str]:
    """`names` checked against the report rows a run can have.

    Raises:
        SurgeryError: a name is no report row (with the closest one).
    """
    for name in names:
        if name not in ROWS:
            close = difflib.get_close_matches(name, ROWS, n=1)
            raise SurgeryError(f"{name!r}: no such model; the models are {', '.join(ROWS)}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return list(names)


def _only(models: dict[str, nn.Module], missing: dict[str, str], names: Sequence[str]) -> tuple[dict[str, nn.Module], dict[str, str]]:
    for name in model_names(names):
        if name in missing:
            raise SurgeryError(f"no {name} to measure: {missing[name]}")
    return {name: model for name, model in models.items() if name in names}, {}


class _Sampler:
    """Measures one model through settings and seeds, reusing a measurement wherever another would repeat it exactly."""

    def __init__(self, model: nn.Module, teacher: nn.Module, blocks: list[str], loader: DataLoader, device: Device, report: Callable) -> None:
        self.model, self.teacher, self.blocks, self.loader, self.device, self.report = model, teacher, blocks, loader, device, report
        self.runs_products: bool | None = None  # known after the first measurement
        self.done: dict[tuple[Setting, int], Measured] = {}

    def measure(self, setting: Setting, seed: int) -> Measured:
        device = setting.device(self.device)
        key = self._key(setting, seed if device.noise.draws(setting.time_s) else 0)
        if key not in self.done:
            crossbars = Crossbars(self.model, device, seed, time_s=setting.time_s, policy=setting.policy or "write")
            self.done[key] = _noisy(self.model, self.teacher, self.blocks, self.loader, crossbars)
            self.runs_products = crossbars.counts["Product"] > 0
            self.done.setdefault(self._key(setting, key[-1]), self.done[key])
        self.report(setting, seed, self.done[key])
        return self.done[key]

    def _key(self, setting: Setting, seed: int) -> tuple[Setting, int]:
        """What determines a measurement: the setting and seed, without the policy once the model is known to run no
        product the policy governs."""
        return (replace(setting, policy=None) if self.runs_products is False else setting), seed


@torch.no_grad()
def _noisy(model: nn.Module, teacher: nn.Module, blocks: list[str], loader: DataLoader, crossbars: Crossbars) -> Measured:
    """Top-1 of `model` computed on `crossbars`, and its block fidelity to the clean teacher: each batch goes through the
    clean teacher, then through the model on the crossbars (one programming, one read-noise stream for all batches)."""
    ctx = init_distributed("cpu")
    totals, cosines = torch.zeros(2, dtype=torch.float64), torch.zeros(len(blocks), 2, dtype=torch.float64)
    for inputs, labels in loader:
        with capture_blocks(teacher, blocks) as wanted:
            predict(teacher, inputs)
        with capture_blocks(model, blocks) as got, crossbars:
            logits = predict(model, inputs)
        totals += torch.tensor([(logits.argmax(-1) == labels).sum().item(), labels.numel()], dtype=torch.float64)
        cosines += block_cosines(got, wanted, token_mask(inputs))
    correct, seen = reduce_sum(totals, ctx).tolist()
    sums, tokens = reduce_sum(cosines, ctx).unbind(-1)
    fidelity = statistics.fmean((sums / tokens.clamp_min(1)).tolist()) if blocks else None
    return Measured(100.0 * correct / max(seen, 1), fidelity)


def _summaries(seeds: list[Measured]) -> dict[str, float | None]:
    summary = _summary("top1", [m.top1 for m in seeds])
    if seeds[0].fidelity is not None:
        summary.update(_summary("fidelity", [m.fidelity for m in seeds]))
    return summary


def _summary(name: str, values: list[float]) -> dict[str, float | None]:
    """Mean and sample standard deviation (None from one seed: no spread can be estimated)."""
    return {f"{name}_mean": statistics.fmean(values), f"{name}_std": statistics.stdev(values) if len(values) > 1 else None}


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
