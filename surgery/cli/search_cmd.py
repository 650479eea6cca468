"""`surgery search RECIPE --out DIR`: choose per site what replaces attention, within the recipe's cost budget."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from surgery.cli.common import JsonOption, SetOption, handles_errors, print_json, stderr, stdout


@handles_errors
def search(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file with a search section.")],
    out: Annotated[Path | None, typer.Option("--out", help="Search directory: the cache, search.json, front.png and the mix (default runs/<name>_search).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Name of the mix recipe written as DIR/<name>.yaml (default <recipe name>_mix).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace DIR/<name>.yaml if it exists.")] = False,
    overrides: SetOption = [],
    device: Annotated[Literal["cpu", "cuda"], typer.Option("--device", help="Where to train the teacher and the predictor.")] = "cpu",
    as_json: JsonOption = False,
) -> None:
    """Price and predict every candidate at every searched site (cached in DIR), solve for the Pareto front of predicted
    loss against cost, and write the lowest-loss mix within the budget as a plain recipe."""
    from surgery.cli.render import search_table
    from surgery.search.driver import run_search
    from surgery.targets import resolve_target

    loaded = resolve_target(str(recipe), overrides, accepts=("recipe",)).recipe
    out = out or Path("runs") / f"{loaded.name}_search"
    result = run_search(loaded, out, name=name, force=force, device=device)
    report = result.to_json()
    dropped = report["chosen"]["dropped_stages"]
    if dropped:
        stderr.print(f"left out of the mix's recipe, which could not run them: {', '.join(dropped)}", style="yellow", highlight=False)
    if as_json:
        print_json(report)
        return
    stdout.print(search_table(report, stdout.width))
    stderr.print(f"front plotted to {out / 'front.png'}; search written to {out / 'search.json'}", highlight=False)
    stdout.print(f"chosen mix written to {result.recipe_path}: surgery apply {result.recipe_path}", highlight=False)
