"""`surgery plan RECIPE`: sites -> substitutes, with params, MACs and hardware cost before and after."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from surgery.cli.common import DeviceOption, JsonOption, SetOption, handles_errors, print_json, stdout, warn_skipped


@handles_errors
def plan(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")],
    overrides: SetOption = [],
    device: DeviceOption = "cpu",
    as_json: JsonOption = False,
) -> None:
    """Trace, detect, select and rewrite without training or weights; print what changes, in counts and hardware cost."""
    from surgery.cli.render import cost_tables, plan_table, totals_table
    from surgery.measure.summary import summarize_recipe
    from surgery.recipe.check import refuse_search
    from surgery.targets import resolve_target

    loaded = resolve_target(str(recipe), overrides, accepts=("recipe",)).recipe
    refuse_search(loaded, "plan")
    summary = summarize_recipe(loaded, device)
    warn_skipped(summary.skipped)
    if as_json:
        print_json(summary.to_json())
        return
    stdout.print(plan_table(summary))
    stdout.print(totals_table(summary))
    if summary.unselected:
        stdout.print(f"left as attention: {', '.join(summary.unselected)}")
    for table in cost_tables(summary.cost.to_json()):
        stdout.print(table)
