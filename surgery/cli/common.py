"""What every command shares: consoles, option types, and the error boundary (exit code 2)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Annotated, Literal, TypeVar

import typer
from rich.console import Console

from surgery.errors import SurgeryError

if TYPE_CHECKING:
    from surgery.rewrite.plan import Skip

F = TypeVar("F", bound=Callable[..., object])

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)
if not stdout.is_terminal:
    stdout.width = 160  # pipes and logs: keep table rows whole instead of folding them to 80 columns
settings = {"debug": False}

SetOption = Annotated[
    list[str],
    typer.Option("--set", help="Override a recipe value: dotted.key=value (list items by index); repeatable."),
]
DeviceOption = Annotated[
    Literal["cpu", "cuda", "meta"],
    typer.Option("--device", help="Where to build the model; meta allocates no weights (plans models too big for RAM)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]
TargetArgument = Annotated[
    str, typer.Argument(metavar="RUN_OR_RECIPE", help="Run directory, recipe YAML file, or a timm model name (every attention → bilstm).")
]


def handles_errors(command: F) -> F:
    """Turn a `SurgeryError` into its lines on stderr and exit code 2 (a traceback only with --debug)."""

    @functools.wraps(command)
    def run(*args: object, **kwargs: object) -> object:
        try:
            return command(*args, **kwargs)
        except SurgeryError as error:
            if settings["debug"]:
                raise
            for line in str(error).splitlines():
                stderr.print(line, style="red", markup=False, highlight=False)
            raise typer.Exit(2) from None

    return run  # type: ignore[return-value]


def warn_skipped(skipped: Iterable[Skip]) -> None:
    """One line on stderr for each site a glob selected and no adapter fits."""
    for skip in skipped:
        stderr.print(f"skipped: {skip.reason}", style="yellow", markup=False, highlight=False)


def print_json(data: object) -> None:
    stdout.out(json.dumps(data, indent=2), highlight=False)
