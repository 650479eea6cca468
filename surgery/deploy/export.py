"""ONNX export of a model, with the checks every export must pass.

The TorchScript exporter (`dynamo=False`) maps each `nn.LSTM` (`nn.GRU`) to one native
ONNX `LSTM` (`GRU`) node, which ONNX Runtime runs as a fused kernel; an export that
unrolled the recurrence into per-step ops would be correct but not what is
measured. So every export counts its recurrent nodes against the model's
`nn.LSTM` and `nn.GRU` layers, refuses loops, and compares ONNX Runtime with PyTorch.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from surgery.errors import SurgeryError
from surgery.models import input_size as model_input_size
from surgery.models import one_line
from surgery.recipe import Recipe, load_recipe
from surgery.recipe.schema import ExportSpec
from surgery.rewrite.student import plan_and_build
from surgery.runs import RunDir, load_run
from surgery.targets import Target

INPUT, OUTPUT = "image", "logits"
LOOP_OPS = frozenset({"Loop", "Scan"})


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote and what its checks measured."""

    path: Path
    opset: int
    dynamic_batch: bool
    lstm_nodes: int
    max_abs_diff: float
    input_size: tuple[int, int, int]

    def to_json(self) -> dict[str, object]:
        return {
            "path": str(self.path), "opset": self.opset, "dynamic_batch": self.dynamic_batch,
            "lstm_nodes": self.lstm_nodes, "max_abs_diff": self.max_abs_diff, "input_size": list(self.input_size),
        }


@dataclass(frozen=True)
class Models:
    """A teacher and its student, the input they take, and the recipe's export settings."""

    name: str
    teacher: nn.Module
    student: nn.Module
    input_size: tuple[int, int, int]
    spec: ExportSpec


def load_models(target: Target) -> Models:
    """A run's trained models, or a recipe's (or timm name's) planned ones with random weights.

    Raises:
        SurgeryError: a text encoder, whose export (token ids and a mask as inputs) is not built yet.
    """
    recipe = target.recipe
    if recipe.model.source != "timm":
        where = recipe.location_of(("model", "source")) or "model.source"
        raise SurgeryError(f"{where}: ONNX export and latency of {recipe.model.source} text encoders are not supported yet; plan, cost and apply are")
    return models_from_run(target.run) if target.run is not None else models_from_recipe(recipe)


def models_from_run(run: RunDir) -> Models:
    """A finished run's trained teacher and student, rebuilt from disk."""
    recipe = load_recipe(run.recipe)
    student = load_run(run.root)
    size = model_input_size(student, recipe.model.input_size)
    return Models(recipe.model.name, load_run(run.root, "teacher").eval(), student, size, recipe.export)


def models_from_recipe(recipe: Recipe) -> Models:
    """The recipe's teacher and planned student with random weights: enough for shapes, parity and latency."""
    plan, teacher, student = plan_and_build(recipe, "cpu")
    return Models(recipe.model.name, teacher.eval(), student.eval(), plan.input_size, recipe.export)


def export_onnx(
    model: nn.Module, input_size: tuple[int, int, int], path: Path, spec: ExportSpec = ExportSpec(), *, force: bool = False
) -> ExportResult:
    """Export `model` (batch, C, H, W) -> logits to `path`, check it, then move it into place atomically.

    Example:
        >>> result = export_onnx(student, (3, 224, 224), Path("far.onnx"))  # doctest: +SKIP
        >>> result.lstm_nodes, result.max_abs_diff <= 1e-4  # doctest: +SKIP
        (72, True)
    """
    path = Path(path)
    if path.exists() and not force:
        raise SurgeryError(f"{path}: already exists (use --force to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp")
    model = model.eval()
    try:
        _write(model, input_size, staging, spec)
        lstm_nodes = check_graph(onnx.load(str(staging)), count_recurrences(model))
        diff = check_parity(model, staging, input_size, spec.atol, batches=(1, 3) if spec.dynamic_batch else (1,))
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)
    return ExportResult(path, spec.opset, spec.dynamic_batch, lstm_nodes, diff, input_size)


def _write(model: nn.Module, input_size: tuple[int, int, int], path: Path, spec: ExportSpec) -> None:
    """The TorchScript exporter; tracing warnings (python checks on default arguments) are expected, so hushed."""
    example = torch.randn(1, *input_size)
    axes = {INPUT: {0: "batch"}, OUTPUT: {0: "batch"}} if spec.dynamic_batch else None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (example,), str(path), dynamo=False, opset_version=spec.opset,
            input_names=[INPUT], output_names=[OUTPUT], dynamic_axes=axes,
        )


def count_recurrences(model: nn.Module) -> dict[str, int]:
    """Native ONNX recurrent nodes an export must hold, by op type: one per layer of each `nn.LSTM` / `nn.GRU`."""
    return {op: sum(m.num_layers for m in model.modules() if isinstance(m, kind)) for op, kind in _RECURRENT.items()}


_RECURRENT = {"LSTM": nn.LSTM, "GRU": nn.GRU}


def check_graph(graph: onnx.ModelProto, expected: int | dict[str, int]) -> int:
    """Validate the ONNX model; recurrences must be native `LSTM` / `GRU` nodes, one per module layer, and no loops.

    `expected` is the LSTM count alone or the counts by op type; returns the LSTM nodes found.
    """
    onnx.checker.check_model(graph)
    expected = expected if isinstance(expected, dict) else {"LSTM": expected}
    ops = [node.op_type for node in graph.graph.node]
    loops = sorted(set(ops) & LOOP_OPS)
    found = {op: ops.count(op) for op in expected}
    if loops or found != expected:
        counts = ", ".join(f"{found[op]} {op} nodes for {expected[op]} nn.{op} layers" for op in expected)
        raise SurgeryError(f"ONNX export unrolled the recurrence: {counts}" + (f", loops {', '.join(loops)}" if loops else ""))
    return found["LSTM"]


def check_parity(
    model: nn.Module, path: Path, input_size: tuple[int, int, int], atol: float, batches: tuple[int, ...] = (1,)
) -> float:
    """Largest |ONNX Runtime - PyTorch| over random inputs of each batch size; above `atol` it is an error."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    diff = 0.0
    for batch in batches:
        x = torch.randn(batch, *input_size, generator=generator)
        with torch.no_grad():
            expected = model(x).numpy()
        try:
            got = session.run([OUTPUT], {INPUT: x.numpy()})[0]
        except Exception as error:  # onnxruntime raises its own pybind types (Fail, RuntimeException, ...)
            raise SurgeryError(f"{path.name}: ONNX Runtime cannot run the export at batch {batch}: {one_line(error)}") from error
        diff = max(diff, float(np.abs(got - expected).max()))
    if diff > atol:
        raise SurgeryError(f"{path.name}: ONNX Runtime differs from PyTorch by {diff:.3g} > export.atol {atol:g}")
    return diff
