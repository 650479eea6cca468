"""ONNX export of a model, with the checks every export must pass.

A text encoder (a Hugging Face model that takes token ids) exports wrapped in
`SentenceEncoder`: `input_ids` and `attention_mask` (batch, N) int64 in, the
mean-pooled `sentence_embedding` (batch, D) out, its sequence axis dynamic, so
one file serves every length its position table holds.

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
from surgery.models import one_line, takes_tokens
from surgery.recipe import Recipe
from surgery.recipe.schema import ExportSpec
from surgery.rewrite.student import plan_and_build
from surgery.sentence import SentenceEncoder

INPUT, OUTPUT = "image", "logits"
TOKENS, EMBEDDING = ("input_ids", "attention_mask"), "sentence_embedding"
"""A text encoder's ONNX input names, (batch, N) int64 each, and its output's, (batch, D)."""
LOOP_OPS = frozenset({"Loop", "Scan"})


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote and what its checks measured."""

    path: Path
    opset: int
    dynamic_batch: bool
    recurrent_nodes: dict[str, int]
    """Native recurrent nodes by op type (LSTM, GRU), one per layer of each recurrent module."""
    max_abs_diff: float
    input_size: tuple[int, ...]
    """(C, H, W) of an image model, (N,) tokens (the length exported with) of a text encoder."""

    def to_json(self) -> dict[str, object]:
        return {
            "path": str(self.path), "opset": self.opset, "dynamic_batch": self.dynamic_batch,
            "recurrent_nodes": self.recurrent_nodes, "max_abs_diff": self.max_abs_diff, "input_size": list(self.input_size),
        }


@dataclass(frozen=True)
class Models:
    """A teacher and its student, the input they take, and the recipe's export settings."""

    name: str
    teacher: nn.Module
    student: nn.Module
    input_size: tuple[int, ...]
    """(C, H, W), or (N,) tokens for a text encoder."""
    spec: ExportSpec


def models_from_recipe(recipe: Recipe) -> Models:
    """The recipe's teacher and planned student with random weights: enough for shapes, parity and latency."""
    plan, teacher, student = plan_and_build(recipe, "cpu")
    return Models(recipe.model.name, teacher.eval(), student.eval(), plan.input_size, recipe.export)


def export_onnx(
    model: nn.Module, input_size: tuple[int, ...], path: Path, spec: ExportSpec = ExportSpec(), *, force: bool = False, batch: int = 1
) -> ExportResult:
    """Export `model` to `path`, check it, then move it into place atomically.

    An image model exports `image` (batch, C, H, W) -> `logits`, traced at `batch` images; a text encoder
    (`takes_tokens`, `input_size` (N,)) exports as `SentenceEncoder`: `input_ids`, `attention_mask` (batch, sequence)
    -> `sentence_embedding`, traced on one sequence of N tokens and checked, padded rows included, at N and N // 2.
    The batch axis is dynamic with `spec.dynamic_batch`; otherwise it is fixed at `batch`, where parity is checked.

    Example:
        >>> result = export_onnx(student, (3, 224, 224), Path("far.onnx"))  # doctest: +SKIP
        >>> result.recurrent_nodes, result.max_abs_diff <= 1e-4  # doctest: +SKIP
        (72, True)
    """
    path = Path(path)
    if path.exists() and not force:
        raise SurgeryError(f"{path}: already exists (use --force to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp")
    if batch != 1 and takes_tokens(model):
        raise SurgeryError(f"{type(model).__name__}: a text encoder exports traced on one sequence, not a batch of {batch}")
    model = model.eval()
    try:
        _write(model, input_size, staging, spec, batch)
        recurrent_nodes = check_graph(onnx.load(str(staging)), count_recurrences(model))
        diff = check_parity(model, staging, input_size, spec.atol, batches=(1, 3) if spec.dynamic_batch else (batch,))
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)
    return ExportResult(path, spec.opset, spec.dynamic_batch, recurrent_nodes, diff, input_size)


def _write(model: nn.Module, input_size: tuple[int, ...], path: Path, spec: ExportSpec, batch: int) -> None:
    """The TorchScript exporter; tracing warnings (python checks on default arguments) are expected, so hushed."""
    if takes_tokens(model):
        _write_tokens(model, input_size[0], path, spec)
        return
    example = torch.randn(batch, *input_size)
    axes = {INPUT: {0: "batch"}, OUTPUT: {0: "batch"}} if spec.dynamic_batch else None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (example,), str(path), dynamo=False, opset_version=spec.opset,
            input_names=[INPUT], output_names=[OUTPUT], dynamic_axes=axes,
        )


def _write_tokens(encoder: nn.Module, length: int, path: Path, spec: ExportSpec) -> None:
    """`SentenceEncoder(encoder)` traced on one sequence of `length` ids, its last quarter padding (the mask is a graph input)."""
    example = token_batch(encoder, length, [length - length // 4], torch.Generator().manual_seed(0))
    batch = {0: "batch"} if spec.dynamic_batch else {}
    axes = {name: {**batch, 1: "sequence"} for name in TOKENS} | ({EMBEDDING: batch} if batch else {})
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            SentenceEncoder(encoder).eval(), tuple(example.values()), str(path), dynamo=False, opset_version=spec.opset,
            input_names=list(TOKENS), output_names=[EMBEDDING], dynamic_axes=axes,
        )


def token_batch(encoder: nn.Module, length: int, real: list[int], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """`input_ids` and `attention_mask`, (len(real), length) int64: row i holds `real[i]` random ids of the encoder's vocabulary,
    then padding (id 0, mask 0).

    Example:
        >>> token_batch(encoder, 4, [4, 2])["attention_mask"].tolist()  # doctest: +SKIP
        [[1, 1, 1, 1], [1, 1, 0, 0]]
    """
    ids = torch.randint(encoder.get_input_embeddings().num_embeddings, (len(real), length), generator=generator)
    mask = (torch.arange(length) < torch.tensor(real)[:, None]).long()
    return {TOKENS[0]: ids * mask, TOKENS[1]: mask}


def count_recurrences(model: nn.Module) -> dict[str, int]:
    """Native ONNX recurrent nodes an export must hold, by op type: one per layer of each `nn.LSTM` / `nn.GRU`."""
    return {op: sum(m.num_layers for m in model.modules() if isinstance(m, kind)) for op, kind in _RECURRENT.items()}


_RECURRENT = {"LSTM": nn.LSTM, "GRU": nn.GRU}


def check_graph(graph: onnx.ModelProto, expected: int | dict[str, int]) -> dict[str, int]:
    """Validate the ONNX model; recurrences must be native `LSTM` / `GRU` nodes, one per module layer, and no loops.

    `expected` is the LSTM count alone or the counts by op type; returns the nodes found by op type.
    """
    onnx.checker.check_model(graph)
    expected = expected if isinstance(expected, dict) else {"LSTM": expected}
    ops = [node.op_type for node in graph.graph.node]
    loops = sorted(set(ops) & LOOP_OPS)
    found = {op: ops.count(op) for op in expected}
    if loops or found != expected:
        counts = ", ".join(f"{found[op]} {op} nodes for {expected[op]} nn.{op} layers" for op in expected)
        raise SurgeryError(f"ONNX export unrolled the recurrence: {counts}" + (f", loops {', '.join(loops)}" if loops else ""))
    return found


def check_parity(model: nn.Module, path: Path, input_size: tuple[int, ...], atol: float, batches: tuple[int, ...] = (1,)) -> float:
    """Largest |ONNX Runtime - PyTorch| over random inputs of each batch size (`parity_inputs`); above `atol` it is an error."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    exported, output = (SentenceEncoder(model).eval(), EMBEDDING) if takes_tokens(model) else (model, OUTPUT)
    diff = 0.0
    for where, feed in parity_inputs(model, input_size, batches):
        with torch.no_grad():
            expected = exported(*feed.values()).numpy()
        try:
            got = session.run([output], {name: x.numpy() for name, x in feed.items()})[0]
        except Exception as error:  # onnxruntime raises its own pybind types (Fail, RuntimeException, ...)
            raise SurgeryError(f"{path.name}: ONNX Runtime cannot run the export at {where}: {one_line(error)}") from error
        diff = max(diff, float(np.abs(got - expected).max()))
    if diff > atol:
        raise SurgeryError(f"{path.name}: ONNX Runtime differs from PyTorch by {diff:.3g} > export.atol {atol:g}")
    return diff


def parity_inputs(model: nn.Module, input_size: tuple[int, ...], batches: tuple[int, ...]) -> list[tuple[str, dict[str, torch.Tensor]]]:
    """(where, inputs by ONNX name) to compare on: random images of each batch size; for a text encoder, token batches
    at N and N // 2 tokens, so the sequence axis is exercised, with padded rows: a batch of one full and half padded,
    a larger batch's rows from full down to about N / batch real tokens (mask zeros at the end)."""
    generator = torch.Generator().manual_seed(0)
    if not takes_tokens(model):
        return [(f"batch {batch}", {INPUT: torch.randn(batch, *input_size, generator=generator)}) for batch in batches]
    inputs = []
    for length in dict.fromkeys((input_size[0], max(1, input_size[0] // 2))):
        for batch in batches:
            rows = [[length], [max(1, length // 2)]] if batch == 1 else [[length - length * r // batch for r in range(batch)]]
            inputs += [(f"batch {batch}, {length} tokens", token_batch(model, length, real, generator)) for real in rows]
    return inputs
