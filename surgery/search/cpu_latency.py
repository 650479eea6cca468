"""CPU latency of each searched site's module alone, under appendix A.4's protocol (ONNX Runtime, batch 1, one thread).

Every site module of every option is exported on the input the teacher feeds that site, and all of them are
alternated run by run with the whole teacher in one process, so that drift hits every figure alike.
"""

from __future__ import annotations

import statistics
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from surgery.deploy.bench import BenchSettings, cpu_threads, onnx_runner, ort_session, time_alternating
from surgery.errors import SurgeryError
from surgery.models import example_input, takes_tokens
from surgery.train.capture import capture_inputs


def site_latencies(models: Mapping[str, nn.Module], sites: Sequence[str], size: tuple[int, ...],
                   settings: BenchSettings = BenchSettings()) -> tuple[dict[str, dict[str, float]], float]:
    """Median seconds of each site's module in each model (option label -> site path -> s), and of the whole `keep` model.

    Raises:
        SurgeryError: a text encoder (its sites take masks), or a site module that does not export on its input alone.
    """
    teacher = models["keep"].eval()
    if takes_tokens(teacher):
        raise SurgeryError("cpu_latency: a text encoder's sites take attention masks and cannot be timed alone; budget another metric")
    with torch.no_grad(), capture_inputs(teacher, sites) as fed:
        teacher(example_input(teacher, size))
    with tempfile.TemporaryDirectory(prefix="surgery-search-") as workdir, cpu_threads(1, settings.pin):
        runners = {("keep", ""): onnx_runner(teacher, size, settings, Path(workdir) / "teacher.onnx")}
        for label, model in models.items():
            for path in sites:
                onnx = Path(workdir) / f"{len(runners)}.onnx"
                runners[label, path] = _site_runner(model.eval().get_submodule(path), fed[path], onnx, f"option {label}, site {path}")
        times = time_alternating(runners, settings.runs, settings.warmup)
    medians = {key: statistics.median(seconds) for key, seconds in times.items()}
    per_site = {label: {path: medians[label, path] for path in sites} for label in models}
    return per_site, medians["keep", ""]


def _site_runner(module: nn.Module, example: torch.Tensor, path: Path, where: str):
    """One call of `module` on `example` in ONNX Runtime (one thread, arena off), as a function."""
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(_OnInput(module), (example,), str(path), dynamo=False, opset_version=BenchSettings.opset, input_names=["x"])
    except Exception as error:  # the exporter raises many types; the user needs to know which site and why
        raise SurgeryError(f"{where}: does not export to ONNX on its input alone ({type(error).__name__}: {error}); budget another metric") from error
    session = ort_session(path)
    feed = {graph_input.name: example.numpy() for graph_input in session.get_inputs()}  # none where the output ignores x (identity)
    return lambda: session.run(None, feed)


class _OnInput(nn.Module):
    """The site module called on its input alone: its other arguments (masks, flags) keep their defaults rather than
    becoming graph inputs, as they would if the exporter traced the module's own signature."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> object:
        return self.module(x)
