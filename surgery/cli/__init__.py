"""The `surgery` command: a thin shell over the public API, one small module per command.

Command modules import the pipeline (torch, timm, onnxruntime) inside their functions, so
`surgery --help` and `surgery schema` start without loading any of it and each command
pays only for what it runs (`benchmarks/cli_latency.py` measures it).
"""

from __future__ import annotations

from typing import Annotated

import typer

from surgery.cli.analyze_cmd import analyze
from surgery.cli.apply_cmd import apply
from surgery.cli.bench_cmd import bench_command
from surgery.cli.common import settings
from surgery.cli.cost_cmd import cost
from surgery.cli.evaluate_cmd import evaluate
from surgery.cli.export_cmd import export
from surgery.cli.inspect_cmd import inspect
from surgery.cli.plan_cmd import plan
from surgery.cli.robustness_cmd import robustness
from surgery.cli.schema_cmd import schema
from surgery.cli.search_cmd import search
from surgery.cli.validate_cmd import validate

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help=__doc__)


@app.callback()
def _options(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False) -> None:
    """Declarative attention replacement for timm transformers."""
    settings["debug"] = debug


app.command()(apply)
app.command()(evaluate)
app.command()(inspect)
app.command()(analyze)
app.command()(plan)
app.command()(cost)
app.command()(robustness)
app.command()(search)
app.command()(export)
app.command("bench")(bench_command)
app.command()(validate)
app.command()(schema)


def main() -> None:
    app()
