"""`surgery export RUN_OR_RECIPE`: the student as ONNX with native LSTM nodes, checked against PyTorch.

A text encoder exports as its sentence embedding: `input_ids`, `attention_mask` -> `sentence_embedding`, any sequence length.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from surgery.cli.common import JsonOption, SetOption, TargetArgument, handles_errors, print_json, stdout

if TYPE_CHECKING:
    from surgery.deploy.export import ExportResult
    from surgery.targets import Target



@handles_errors
def export(
    target: TargetArgument,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="ONNX file (default <run>/student.onnx, else <recipe name>.onnx).")] = None,
    opset: Annotated[int | None, typer.Option("--opset", min=7, help="ONNX opset (default: the recipe's export.opset, 17).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
    overrides: SetOption = [],
    as_json: JsonOption = False,
) -> None:
    """Write the student to ONNX, then check its LSTM nodes and its parity with PyTorch in ONNX Runtime (export.atol)."""
    from surgery.deploy.export import export_onnx
    from surgery.runs.trained import load_models
    from surgery.targets import resolve_target

    resolved = resolve_target(target, overrides)
    models = load_models(resolved)
    spec = models.spec if opset is None else models.spec.model_copy(update={"opset": opset})
    result = export_onnx(models.student, models.input_size, out or default_path(resolved), spec, force=force)
    if as_json:
        print_json(result.to_json())
        return
    stdout.print(
        f"{result.path}: opset {result.opset}, {_recurrences(result)}, batch "
        f"{'dynamic' if result.dynamic_batch else 'fixed'}{_text_io(result)}, max |ORT - PyTorch| {result.max_abs_diff:.2e}",
        highlight=False,
    )


def _recurrences(result: ExportResult) -> str:
    """"24 LSTM nodes", "8 GRU nodes", or "no recurrent nodes" (a student without recurrent substitutes)."""
    found = [f"{count} {op} nodes" for op, count in result.recurrent_nodes.items() if count]
    return ", ".join(found) or "no recurrent nodes"


def _text_io(result: ExportResult) -> str:
    """What a text encoder's file takes and gives; nothing for an image model."""
    from surgery.deploy.export import EMBEDDING, TOKENS

    return f", sequence dynamic ({', '.join(TOKENS)} -> {EMBEDDING})" if len(result.input_size) == 1 else ""


def default_path(target: Target) -> Path:

    return target.run.root / "student.onnx" if target.run is not None else Path(f"{Path(target.text).stem}.onnx")
