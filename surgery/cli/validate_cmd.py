"""`surgery validate RECIPE`: schema and registry checks, and the model's head against the data's classes (on the meta device)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from surgery.cli.common import SetOption, handles_errors, stdout


@handles_errors
def validate(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")],
    overrides: SetOption = [],
) -> None:
    """Exit 0 when the recipe is valid; otherwise print FILE:LINE:COL: message lines and exit 2."""
    from surgery.recipe import check_recipe
    from surgery.runs.head import check_head
    from surgery.targets import resolve_target

    loaded = resolve_target(str(recipe), overrides, accepts=("recipe",)).recipe
    check_recipe(loaded)
    notes = [check_head(loaded)]
    source = loaded.model.from_run
    if source is not None and not source.exists():
        notes.append(f"model.from_run: no run at {source} yet; checked against {loaded.model.made_by}, which makes it (`surgery apply` needs the run)")
    for note in filter(None, notes):
        stdout.print(f"note: {note}", highlight=False)
    stdout.print(f"{recipe}: valid ({len(loaded.rewrites)} rewrites, {len(loaded.stages)} stages)", highlight=False)
