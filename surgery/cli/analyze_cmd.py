"""`surgery analyze RUN_OR_RECIPE`: how sparse each attention site is on real inputs, per head; with --maps, teacher vs student dependencies."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.table import Table

from surgery.cli.common import JsonOption, handles_errors, print_json, stdout
from surgery.errors import SurgeryError

if TYPE_CHECKING:  # types only: the analyze package loads torch and the data pipeline
    from surgery.analyze.agreement import BlockAgreement
    from surgery.detect.sparsity import SiteSparsity


@handles_errors
def analyze(
    target: Annotated[str, typer.Argument(metavar="RUN_OR_RECIPE", help="A finished run (its trained teacher) or a recipe (its model's weights).")],
    batches: Annotated[int, typer.Option("--batches", min=1, help="Validation batches to measure on.")] = 4,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 64,
    top_fraction: Annotated[float, typer.Option("--top-fraction", min=0.0, max=1.0, help="Share of keys in the top-mass measure.")] = 0.1,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write heatmaps (sites x heads, per measure) to this PNG.")] = None,
    maps: Annotated[
        bool,
        typer.Option(
            "--maps",
            help="For a run: teacher vs student token-to-token dependency maps (per site, head and direction; cumulative over blocks), "
            "their Spearman rank correlations, and PNGs in RUN/plots/dependency/.",
        ),
    ] = False,
    map_images: Annotated[int, typer.Option("--map-images", min=1, help="Validation images the dependency maps average over.")] = 8,
    out: Annotated[Path | None, typer.Option("--out", help="Folder for the dependency PNGs (default RUN/plots/dependency/).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Attention entropy, top-key mass and Hoyer sparsity of every site, averaged over rows and heads.

    Sparse sites (low entropy, high top mass, high Hoyer) are the ones a substitute replaces at least cost.
    """
    from surgery.analyze.maps import dependency_maps
    from surgery.analyze.sparsity import analyze as analyze_sparsity
    from surgery.analyze.sparsity import plot_sparsity
    from surgery.targets import resolve_target

    if top_fraction <= 0:
        raise SurgeryError(f"--top-fraction must be in (0, 1], got {top_fraction}")
    resolved = resolve_target(target, accepts=("run", "recipe"))
    if maps and resolved.run is None:
        raise SurgeryError(f"--maps needs a finished run (a teacher and its student), not {target}")
    if out is not None and not maps:
        raise SurgeryError("--out names the folder of the dependency maps; it needs --maps")
    weights, results = analyze_sparsity(resolved, batches, batch_size, top_fraction)
    if plot is not None:
        plot_sparsity(results, plot, f"attention sparsity: {weights}")
    report = dependency_maps(resolved.run, resolved.recipe, map_images, out) if resolved.run and maps else None
    if as_json:
        print_json({"weights": weights, "sites": [r.to_json() for r in results], **({"maps": report.to_json()} if report else {})})
        return
    stdout.print(_sparsity_table(results, weights))
    if report is not None:
        stdout.print(_agreement_table(report.agreements, report.images))
        for path in report.figures:
            stdout.print(f"dependency map: {path}", highlight=False)


def _sparsity_table(results: list[SiteSparsity], weights: str) -> Table:
    table = Table(box=box.SIMPLE_HEAD, title=f"attention sparsity on validation data: {weights}")
    for column in ("site", "heads", "rows", "entropy ↓sparse", "top mass ↑sparse", "hoyer ↑sparse"):
        table.add_column(column, justify="left" if column == "site" else "right")
    for r in results:
        table.add_row(r.path, str(len(r.heads["entropy"])), str(r.rows), *(f"{r.mean(m):.3f}" for m in ("entropy", "top_mass", "hoyer")))
    return table


def _agreement_table(agreements: list[BlockAgreement], images: int) -> Table:
    """Spearman ρ per block: site maps, cumulative attributions (all pairs, then without the diagonal), and each head where heads correspond."""
    table = Table(box=box.SIMPLE_HEAD, title=f"teacher vs student token dependencies, Spearman ρ over {images} validation images")
    for column in ("block", "site", "attention ~ saliency", "cumulative attribution", "off-diagonal", "per head (fwd+bwd)"):
        table.add_column(column, justify="left" if column in ("block", "site") else "right")
    for a in agreements:
        heads = " ".join(_number(h["both"]) for h in a.heads) or "-"
        table.add_row(a.block, a.site, _number(a.attention), _number(a.attribution), _number(a.attribution_off_diagonal), heads)
    return table


def _number(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"
