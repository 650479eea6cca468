"""`surgery export RUN_OR_RECIPE`: the student as ONNX with native LSTM nodes, checked against PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from surgery.cli.common import JsonOption, SetOption, handles_errors, print_json, stdout
from surgery.cli.cost_cmd import cost_recipe
from surgery.errors import SurgeryError
from surgery.export import Models, export_onnx, models_from_recipe, models_from_run

TargetArgument = Annotated[
    str, typer.Argument(metavar="RUN_OR_RECIPE", help="Run directory, recipe YAML file, or a timm model name (every attention → bilstm).")
]


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
    models = load_models(target, overrides)
    spec = models.spec if opset is None else models.spec.model_copy(update={"opset": opset})
    result = export_onnx(models.student, models.input_size, out or default_path(target), spec, force=force)
    if as_json:
        print_json(result.to_json())
        return
    stdout.print(
        f"{result.path}: opset {result.opset}, {result.lstm_nodes} LSTM nodes, batch "
        f"{'dynamic' if result.dynamic_batch else 'fixed'}, max |ORT - PyTorch| {result.max_abs_diff:.2e}",
        highlight=False,
    )


def load_models(target: str, overrides: list[str]) -> Models:
    """A run directory gives its trained models; a recipe or timm name, the planned ones with random weights."""
    if Path(target).is_dir():
        if overrides:
            raise SurgeryError(f"{target}: --set changes recipes, not finished runs")
        return models_from_run(Path(target))
    return models_from_recipe(cost_recipe(target, overrides))


def default_path(target: str) -> Path:
    return Path(target) / "student.onnx" if Path(target).is_dir() else Path(f"{Path(target).stem}.onnx")
