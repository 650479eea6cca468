"""`surgery apply RECIPE`: run every stage, write runs/<name>/ with weights, metrics and report."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import typer

from surgery.cli.common import SetOption, handles_errors, stdout


@handles_errors
def apply(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")],
    out: Annotated[Path | None, typer.Option("--out", help="Run directory (default runs/<recipe name>).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last checkpoint.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing run in --out.")] = False,
    overrides: SetOption = [],
    device: Annotated[Literal["cpu", "cuda"], typer.Option("--device", help="Where to train.")] = "cpu",
    tensorboard: Annotated[bool, typer.Option("--tensorboard", help="Also log to DIR/tensorboard (needs the tensorboard package).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only check what can be checked before training, print it, write nothing.")] = False,
) -> None:
    """Train and evaluate the recipe's stages; under torchrun each process takes its share of the batch."""
    from surgery.runs import apply_recipe
    from surgery.runs.preflight import preflight
    from surgery.targets import resolve_target

    loaded = resolve_target(str(recipe), overrides, accepts=("recipe",)).recipe
    out = out or Path("runs") / loaded.name
    if dry_run:
        checked = preflight(loaded, out, resume=resume, force=force, world_size=int(os.environ.get("WORLD_SIZE", "1")))
        for line in checked.checked:
            stdout.print(f"✓ {line}", highlight=False)
        return
    run = apply_recipe(loaded, out, resume=resume, force=force, device=device, tensorboard=tensorboard)
    if os.environ.get("RANK", "0") == "0" and run.report_md.exists():  # under torchrun, rank 0 reports
        stdout.print(run.report_md.read_text(), markup=False, highlight=False)
        stdout.print(f"run written to {run.root}", highlight=False)
