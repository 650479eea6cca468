"""CPU latency under the FAR paper's protocol (appendix A.4).

ONNX Runtime on CPU with one intra-op thread and the memory arena off, batch
1, warm-up runs then the median of timed runs, the process pinned to one core
where the OS allows. Models are alternated run by run in one process, so that
drift (frequency, cache, neighbours) hits every model alike and ratios can be
read side by side. PyTorch eager on as many threads is measured the same way
as a second column. Image models may also be timed at larger batches (each
exported with its batch fixed) and on more threads: a batch lets each
recurrent step read W_hh once for several images, while attention's work per
image stays quadratic in the tokens.

Image models are timed at image sizes (`bench`); text encoders at sequence
lengths (`bench_sequences`, `sequence_latency`), every token real, each model
exported once with a dynamic sequence axis. Every result names the CPU and
its vector ISA (`surgery.deploy.machine`): a latency means little without them.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import re
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import onnxruntime as ort
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from torch import nn

from surgery.deploy.export import INPUT, export_onnx, token_batch
from surgery.deploy.machine import machine
from surgery.deploy.options import Optimization, Precision
from surgery.errors import SurgeryError
from surgery.measure.counting import count
from surgery.models import input_size, sequence_length
from surgery.recipe.schema import ExportSpec
from surgery.sentence import SentenceEncoder

STUDENT = "FAR"
"""How reports name the student beside its teacher (named by its timm model)."""



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
    threads: int = 1
    """ONNX Runtime intra-op and PyTorch threads; the process is pinned to one core only when it is one."""


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
    """One model at one image size and batch: params and MACs of one image, latencies of one call on the whole batch."""

    model: str
    img_size: int
    batch: int
    params: int
    macs: int
    onnx: Timing
    eager: Timing | None


@dataclass(frozen=True)
class SequenceRow:
    """One text encoder at one sequence length (batch 1, every token real)."""

    model: str
    tokens: int
    params: int
    macs: int
    onnx: Timing
    eager: Timing | None


Row = BenchRow | SequenceRow


def cell_of(row: Row) -> dict[str, int]:
    """Where a row was measured: {"img_size": pixels, "batch": images} of an image row, {"tokens": length} of a text row."""
    return {"tokens": row.tokens} if isinstance(row, SequenceRow) else {"img_size": row.img_size, "batch": row.batch}


def bench(
    models: dict[str, nn.Module], img_sizes: Sequence[int], settings: BenchSettings, workdir: Path, batches: Sequence[int] = (1,)
) -> list[BenchRow]:
    """Measure every model at every image size and batch; the models of one (size, batch) cell are alternated run by run.

    Example:
        >>> rows = bench({"deit": teacher, "far": student}, (224,), BenchSettings(), Path("/tmp/bench"), batches=(1, 16))  # doctest: +SKIP
    """
    rows = []
    with cpu_threads(settings.threads, settings.pin):
        for size in img_sizes:
            resized = {name: resize(model, size) for name, model in models.items()}
            for batch in batches:
                rows += _bench_cell(resized, size, batch, settings, workdir)
    return rows


def _bench_cell(models: dict[str, nn.Module], size: int, batch: int, settings: BenchSettings, workdir: Path) -> list[BenchRow]:
    shape = _shape(models, size)
    sessions = {name: onnx_runner(model, shape, settings, workdir / f"{name}-{size}-b{batch}.onnx", batch) for name, model in models.items()}
    onnx_times = time_alternating(sessions, settings.runs, settings.warmup)
    eager_times = {}
    if settings.eager:
        eager = {name: eager_runner(model, shape, settings.precision, batch) for name, model in models.items()}
        eager_times = time_alternating(eager, settings.runs, settings.warmup)
    rows = []
    for name, model in models.items():
        counts = count(model, shape)
        eager_timing = Timing.of(eager_times[name]) if name in eager_times else None
        rows.append(BenchRow(name, size, batch, counts.params, counts.macs, Timing.of(onnx_times[name]), eager_timing))
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


def onnx_runner(model: nn.Module, shape: tuple[int, int, int], settings: BenchSettings, path: Path, batch: int = 1) -> Callable[[], object]:
    """Export at `batch` images (the batch axis fixed, parity-checked), quantize if asked, and return one inference as a call."""
    export_onnx(model, shape, path, ExportSpec(opset=settings.opset, dynamic_batch=False), force=True, batch=batch)
    if settings.precision == "int8":
        path = quantize_int8(path)
    return batch_runner(ort_session(path, settings.optimization, settings.threads), shape, batch)


def batch_runner(session: ort.InferenceSession, shape: tuple[int, int, int], batch: int) -> Callable[[], object]:
    """One inference of `batch` random images of `shape` (C, H, W) as a call; the same images every call."""
    feed = {INPUT: torch.randn(batch, *shape).numpy()}
    return lambda: session.run(None, feed)


def ort_session(path: Path, optimization: Optimization = "all", threads: int = 1) -> ort.InferenceSession:
    """`threads` intra-op threads (A.4: one) that sleep rather than spin between runs, one inter-op thread, sequential
    execution, CPU memory arena off (A.4)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    if threads > 1:  # every session has its own pool; one spinning after its run takes the cores the next alternated session needs
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
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


def eager_runner(model: nn.Module, shape: tuple[int, int, int], precision: Precision, batch: int = 1) -> Callable[[], object]:
    """One PyTorch forward of `batch` images; int8 is torch's dynamic quantization of Linear and LSTM layers."""
    model = _eager_int8(model) if precision == "int8" else model
    x = torch.randn(batch, *shape)

    def run() -> object:
        with torch.inference_mode():
            return model(x)

    return run


def _eager_int8(model: nn.Module) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization announces its deprecation
        return torch.ao.quantization.quantize_dynamic(model, {nn.Linear, nn.LSTM}, dtype=torch.qint8)


def sequence_latency(model: nn.Module, lengths: Sequence[int], settings: BenchSettings, workdir: Path) -> dict[int, Timing]:
    """ONNX Runtime latency of a text encoder at each sequence length: {length: Timing (ms)}, under appendix A.4.

    `model` (a Hugging Face encoder that takes token ids, e.g. a run's student) is copied to the CPU in eval
    mode, so the caller's model is left as it was; the copy is exported once as `SentenceEncoder` (token ids and
    attention mask in, mean-pooled embedding out) with a dynamic sequence axis, parity-checked against PyTorch,
    quantized when `settings.precision` is int8, and timed on batches of one sequence of `length` real tokens
    (mask all ones): `settings.threads` intra-op threads, `settings.warmup` untimed runs then `settings.runs` timed
    ones, the lengths alternated run by run, the process pinned to one core when `settings.pin` and one thread. PyTorch eager is not
    timed here (`settings.eager` is ignored). The ONNX file lives in a scratch folder under `workdir`, removed after.

    Raises:
        SurgeryError: a length outside the model's position table, or an export that fails its checks.

    Example:
        >>> timings = sequence_latency(student, [128, 256, 512], BenchSettings(), Path("/tmp"))  # doctest: +SKIP
        >>> {length: round(t.median, 1) for length, t in timings.items()}  # doctest: +SKIP
        {128: 9.8, 256: 21.3, 512: 49.0}
    """
    lengths = tuple(dict.fromkeys(lengths))
    encoder = copy.deepcopy(model).float().cpu().eval()
    workdir.mkdir(parents=True, exist_ok=True)
    with cpu_threads(settings.threads, settings.pin), tempfile.TemporaryDirectory(prefix="latency-", dir=workdir) as scratch:
        at = sequence_runner(encoder, lengths, settings, Path(scratch) / "encoder.onnx")
        times = time_alternating({str(length): at(length) for length in lengths}, settings.runs, settings.warmup)
    return {length: Timing.of(times[str(length)]) for length in lengths}


def bench_sequences(models: dict[str, nn.Module], lengths: Sequence[int], settings: BenchSettings, workdir: Path) -> list[SequenceRow]:
    """Measure every text encoder at every sequence length, batch 1, every token real: each model exported once
    (sequence axis dynamic), the models of one length alternated run by run, eager beside ONNX Runtime."""
    lengths = tuple(dict.fromkeys(lengths))
    rows = []
    with cpu_threads(settings.threads, settings.pin):
        onnx = {name: sequence_runner(model, lengths, settings, workdir / _file_name(name)) for name, model in models.items()}
        eager = {name: eager_sequence_runner(model, settings.precision) for name, model in models.items()} if settings.eager else {}
        for length in lengths:
            onnx_times = time_alternating({name: at(length) for name, at in onnx.items()}, settings.runs, settings.warmup)
            eager_times = time_alternating({name: at(length) for name, at in eager.items()}, settings.runs, settings.warmup)
            for name, model in models.items():
                counts = count(model, (length,))
                eager_timing = Timing.of(eager_times[name]) if name in eager_times else None
                rows.append(SequenceRow(name, length, counts.params, counts.macs, Timing.of(onnx_times[name]), eager_timing))
    return rows


def _file_name(model: str) -> str:
    """A file name for a model named by a path or hub id (`/models/minilm`, `sentence-transformers/all-MiniLM-L6-v2`)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", model) + ".onnx"


def sequence_runner(encoder: nn.Module, lengths: Sequence[int], settings: BenchSettings, path: Path) -> Callable[[int], Callable[[], object]]:
    """Export `encoder` once at the longest length (parity-checked at it and half of it), quantize if asked; then for
    each length, one batch-1 inference of that many real tokens as a call."""
    check_lengths(encoder, lengths)
    export_onnx(encoder, (max(lengths),), path, ExportSpec(opset=settings.opset, dynamic_batch=False), force=True)
    session = ort_session(quantize_int8(path) if settings.precision == "int8" else path, settings.optimization, settings.threads)

    def at(length: int) -> Callable[[], object]:
        feed = {name: x.numpy() for name, x in _sequence(encoder, length).items()}
        return lambda: session.run(None, feed)

    return at


def eager_sequence_runner(encoder: nn.Module, precision: Precision) -> Callable[[int], Callable[[], object]]:
    """For each length, one batch-1 PyTorch forward of `SentenceEncoder(encoder)` as a call; int8 as `eager_runner`."""
    pooled = SentenceEncoder(_eager_int8(encoder) if precision == "int8" else encoder).eval()

    def at(length: int) -> Callable[[], object]:
        ids, mask = _sequence(encoder, length).values()

        def run() -> object:
            with torch.inference_mode():
                return pooled(ids, mask)

        return run

    return at


def _sequence(encoder: nn.Module, length: int) -> dict[str, torch.Tensor]:
    """One sequence of `length` real tokens (mask all ones), the same ids for every model and run."""
    return token_batch(encoder, length, [length], torch.Generator().manual_seed(length))


def check_lengths(encoder: nn.Module, lengths: Sequence[int]) -> None:
    """Every length must fit the encoder's position table."""
    longest = sequence_length(encoder)[0]
    too_long = [length for length in lengths if not 1 <= length <= longest]
    if too_long or not lengths:
        raise SurgeryError(f"{type(encoder).__name__} takes 1 to {longest} tokens; cannot time sequences of {too_long or 'no'} tokens")


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
def cpu_threads(count: int, pin: bool) -> Iterator[None]:
    """PyTorch on `count` threads and, with one thread where the OS allows, the process pinned to one core; both restored
    after. More threads are left free to spread over the cores."""
    threads = torch.get_num_threads()
    affinity = os.sched_getaffinity(0) if pin and count == 1 and hasattr(os, "sched_setaffinity") else None
    torch.set_num_threads(count)
    if affinity:
        os.sched_setaffinity(0, {min(affinity)})
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if affinity:
            os.sched_setaffinity(0, affinity)


def _one_thread(pin: bool) -> contextlib.AbstractContextManager[None]:
    """`cpu_threads(1, pin)`: appendix A.4's setting, as benchmarks/lstm_layouts.py takes it."""
    return cpu_threads(1, pin)


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity where the OS tells it, else the CPU count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def thread_count(value: str) -> int:
    """Threads from an option's text: a count, or `0` / `all` for every available core; more than those is refused,
    since threads sharing a core time the scheduler, not the model.

    Example:
        >>> thread_count("1"), thread_count("all") == available_cores()
        (1, True)
    """
    cores = available_cores()
    if value.strip().lower() in {"0", "all"}:
        return cores
    try:
        threads = int(value)
    except ValueError:
        threads = -1
    if not 1 <= threads <= cores:
        raise SurgeryError(f"--threads {value}: give 1 to {cores} (the cores this process may use), or 0 / all for all of them")
    return threads


def ratios(rows: Sequence[Row], baseline: str) -> list[dict[str, object]]:
    """Each model's median latency over the baseline's in the same cell (image size and batch, or sequence length),
    ONNX Runtime and eager."""
    base = {tuple(cell_of(row).items()): row for row in rows if row.model == baseline}
    out = []
    for row in rows:
        ref = base.get(tuple(cell_of(row).items()))
        if row.model == baseline or ref is None:
            continue
        eager = row.eager.median / ref.eager.median if row.eager and ref.eager else None
        out.append({"model": row.model, "baseline": baseline, **cell_of(row), "onnx": row.onnx.median / ref.onnx.median, "eager": eager})
    return out


def to_json(rows: Sequence[Row], settings: BenchSettings, baseline: str) -> dict[str, object]:
    return {
        "settings": asdict(settings), "machine": machine(), "unit": "ms per call (one batch of `batch` images, or one sequence)",
        "rows": [asdict(row) for row in rows], "ratios": ratios(rows, baseline),
    }
