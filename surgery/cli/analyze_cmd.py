"""`surgery analyze RUN_OR_RECIPE`: how sparse each attention site is on real inputs, per head."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from surgery.cli.common import JsonOption, handles_errors, print_json, stdout
from surgery.errors import SurgeryError


@handles_errors
def analyze(
    target: Annotated[str, typer.Argument(metavar="RUN_OR_RECIPE", help="A finished run (its trained teacher) or a recipe (its model's weights).")],
    batches: Annotated[int, typer.Option("--batches", min=1, help="Validation batches to measure on.")] = 4,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 64,
    top_fraction: Annotated[float, typer.Option("--top-fraction", min=0.0, max=1.0, help="Share of keys in the top-mass measure.")] = 0.1,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write heatmaps (sites x heads, per measure) to this PNG.")] = None,
    maps: Annotated[
        bool, typer.Option("--maps", help="For a run: token-to-token dependency PNGs (teacher attention vs student saliency) in RUN/plots/dependency/.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Attention entropy, top-key mass and Hoyer sparsity of every site, averaged over rows and heads.

    Sparse sites (low entropy, high top mass, high Hoyer) are the ones a substitute replaces at least cost.
    """
    from surgery.analyze.dependency import dependency_maps
    from surgery.analyze.sparsity import analyze as analyze_sparsity
    from surgery.analyze.sparsity import plot_sparsity
    from surgery.targets import resolve_target

    if top_fraction <= 0:
        raise SurgeryError(f"--top-fraction must be in (0, 1], got {top_fraction}")
    resolved = resolve_target(target, accepts=("run", "recipe"))
    if maps and resolved.run is None:
        raise SurgeryError(f"--maps needs a finished run (a teacher and its student), not {target}")
    weights, results = analyze_sparsity(resolved, batches, batch_size, top_fraction)
    if plot is not None:
        plot_sparsity(results, plot, f"attention sparsity: {weights}")
    written = dependency_maps(resolved.run, resolved.recipe, results, batch_size=min(batch_size, 16)) if resolved.run and maps else []
    if as_json:
        print_json({"weights": weights, "sites": [r.to_json() for r in results], "maps": [str(p) for p in written]})
        return
    table = Table(box=box.SIMPLE_HEAD, title=f"attention sparsity on validation data: {weights}")
    for column in ("site", "heads", "rows", "entropy ↓sparse", "top mass ↑sparse", "hoyer ↑sparse"):
        table.add_column(column, justify="left" if column == "site" else "right")
    for r in results:
        table.add_row(r.path, str(len(r.heads["entropy"])), str(r.rows), *(f"{r.mean(m):.3f}" for m in ("entropy", "top_mass", "hoyer")))
    stdout.print(table)
    for path in written:
        stdout.print(f"dependency map: {path}", highlight=False)
