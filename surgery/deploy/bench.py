"""CPU latency under the FAR paper's protocol (appendix A.4).

ONNX Runtime on CPU with one intra-op thread and the memory arena off, batch
1, warm-up runs then the median of timed runs, the process pinned to one core
where the OS allows. Models are alternated run by run in one process, so that
drift (frequency, cache, neighbours) hits every model alike and ratios can be
read side by side. PyTorch eager on one thread is measured the same way as a
second column.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import onnxruntime as ort
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from torch import nn

from surgery.deploy.export import INPUT, export_onnx
from surgery.errors import SurgeryError
from surgery.measure.counting import count
from surgery.models import input_size
from surgery.recipe.schema import ExportSpec

STUDENT = "FAR"
"""How reports name the student beside its teacher (named by its timm model)."""

Precision = Literal["fp32", "int8"]
Optimization = Literal["disable", "basic", "extended", "all"]


@dataclass(frozen=True)
class BenchSettings:
    """How to measure; the defaults are appendix A.4's."""

    runs: int = 100
    warmup: int = 30
    precision: Precision = "fp32"
    optimization: Optimization = "all"
    pin: bool = True
    eager: bool = True
    opset: int = 17


@dataclass(frozen=True)
class Timing:
    """Milliseconds over the timed runs."""

    median: float
    min: float
    max: float

    @classmethod
    def of(cls, seconds: list[float]) -> Timing:
        return cls(statistics.median(seconds) * 1e3, min(seconds) * 1e3, max(seconds) * 1e3)


@dataclass(frozen=True)
class BenchRow:
    """One model at one image size."""

    model: str
    img_size: int
    params: int
    macs: int
    onnx: Timing
    eager: Timing | None


def bench(models: dict[str, nn.Module], img_sizes: tuple[int, ...], settings: BenchSettings, workdir: Path) -> list[BenchRow]:
    """Measure every model at every image size; the models of one size are alternated run by run.

    Example:
        >>> rows = bench({"deit": teacher, "far": student}, (224,), BenchSettings(), Path("/tmp/bench"))  # doctest: +SKIP
    """
    rows = []
    with _one_thread(settings.pin):
        for size in img_sizes:
            resized = {name: resize(model, size) for name, model in models.items()}
            rows += _bench_size(resized, size, settings, workdir)
    return rows


def _bench_size(models: dict[str, nn.Module], size: int, settings: BenchSettings, workdir: Path) -> list[BenchRow]:
    shape = _shape(models, size)
    sessions = {name: onnx_runner(model, shape, settings, workdir / f"{name}-{size}.onnx") for name, model in models.items()}
    onnx_times = time_alternating(sessions, settings.runs, settings.warmup)
    eager_times = {}
    if settings.eager:
        eager = {name: eager_runner(model, shape, settings.precision) for name, model in models.items()}
        eager_times = time_alternating(eager, settings.runs, settings.warmup)
    rows = []
    for name, model in models.items():
        counts = count(model, shape)
        eager_timing = Timing.of(eager_times[name]) if name in eager_times else None
        rows.append(BenchRow(name, size, counts.params, counts.macs, Timing.of(onnx_times[name]), eager_timing))
    return rows


def _shape(models: dict[str, nn.Module], size: int) -> tuple[int, int, int]:
    """(C, size, size), C read off the models, which must agree (they are timed on the same input)."""
    channels = {name: input_size(model)[0] for name, model in models.items()}
    if len(set(channels.values())) != 1:
        raise SurgeryError(f"the models to compare take different input channels: {channels}")
    return next(iter(channels.values())), size, size


def resize(model: nn.Module, img_size: int) -> nn.Module:
    """A copy taking `img_size` images (timm resamples the position embedding); latency depends on shapes only."""
    if not hasattr(model, "set_input_size"):
        raise SurgeryError(f"{type(model).__name__}: cannot change its image size (no set_input_size)")
    resized = copy.deepcopy(model).eval()
    resized.set_input_size(img_size=img_size)
    return resized


def onnx_runner(model: nn.Module, shape: tuple[int, int, int], settings: BenchSettings, path: Path) -> Callable[[], object]:
    """Export (parity-checked), quantize if asked, and return one batch-1 inference as a call."""
    spec = ExportSpec(opset=settings.opset, dynamic_batch=False)
    export_onnx(model, shape, path, spec, force=True)
    if settings.precision == "int8":
        path = quantize_int8(path)
    session = ort_session(path, settings.optimization)
    feed = {INPUT: torch.randn(1, *shape).numpy()}
    return lambda: session.run(None, feed)


def ort_session(path: Path, optimization: Optimization = "all") -> ort.InferenceSession:
    """One intra-op and one inter-op thread, sequential execution, CPU memory arena off (A.4)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_cpu_mem_arena = False
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, f"ORT_{_LEVELS[optimization]}")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


_LEVELS = {"disable": "DISABLE_ALL", "basic": "ENABLE_BASIC", "extended": "ENABLE_EXTENDED", "all": "ENABLE_ALL"}


def quantize_int8(path: Path) -> Path:
    """Dynamic int8 (weights int8, activations quantized per run), ONNX Runtime's `quantize_dynamic`."""
    target = path.with_name(f"{path.stem}.int8.onnx")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # it advises, on the root logger, a pre-processing pass the bench leaves out on purpose
    try:
        quantize_dynamic(str(path), str(target), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    return target


def eager_runner(model: nn.Module, shape: tuple[int, int, int], precision: Precision) -> Callable[[], object]:
    """One batch-1 PyTorch forward; int8 is torch's dynamic quantization of Linear and LSTM layers."""
    if precision == "int8":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization announces its deprecation
            model = torch.ao.quantization.quantize_dynamic(model, {nn.Linear, nn.LSTM}, dtype=torch.qint8)
    x = torch.randn(1, *shape)

    def run() -> object:
        with torch.inference_mode():
            return model(x)

    return run


def time_alternating(runners: dict[str, Callable[[], object]], runs: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per call: `warmup` untimed rounds, then `runs` rounds, each calling every runner once in turn."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    for round_ in range(warmup + runs):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


@contextlib.contextmanager
def _one_thread(pin: bool) -> Iterator[None]:
    """PyTorch on one thread and, where the OS allows, the process pinned to one core; both restored after."""
    threads = torch.get_num_threads()
    affinity = os.sched_getaffinity(0) if pin and hasattr(os, "sched_setaffinity") else None
    torch.set_num_threads(1)
    if affinity:
        os.sched_setaffinity(0, {min(affinity)})
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if affinity:
            os.sched_setaffinity(0, affinity)


def ratios(rows: list[BenchRow], baseline: str) -> list[dict[str, object]]:
    """Each model's median latency over the baseline's at the same image size, ONNX Runtime and eager."""
    base = {row.img_size: row for row in rows if row.model == baseline}
    out = []
    for row in rows:
        ref = base.get(row.img_size)
        if row.model == baseline or ref is None:
            continue
        eager = row.eager.median / ref.eager.median if row.eager and ref.eager else None
        out.append({"model": row.model, "baseline": baseline, "img_size": row.img_size, "onnx": row.onnx.median / ref.onnx.median, "eager": eager})
    return out


def to_json(rows: list[BenchRow], settings: BenchSettings, baseline: str) -> dict[str, object]:
    return {"settings": asdict(settings), "unit": "ms, batch 1", "rows": [asdict(row) for row in rows], "ratios": ratios(rows, baseline)}
