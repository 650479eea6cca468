"""Rich tables for the CLI; numbers in M (params) and G (MACs) with before -> after columns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console, Group
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from surgery.measure.tables import NOTE, Row, block_columns, block_rows, cost_title, total_columns, total_rows

if TYPE_CHECKING:  # types only: importing analyze would load the data pipeline for every plan
    from surgery.analyze.coverage import FamilyResult
    from surgery.detect.sites import Site
    from surgery.measure.summary import PlanSummary


def sites_table(title: str, sites: list[Site]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, title=title)
    for column in ("#", "path", "class", "heads×d", "width", "tokens", "adapted as", "activation × activation products"):
        table.add_column(column)
    for site in sites:
        adapted = site.contract.describe if site.contract else f"no: {site.refusal}"
        table.add_row(
            str(site.index), site.path, site.class_name, f"{site.num_heads}×{site.head_dim}", str(site.dim),
            str(site.seq_len), adapted, ", ".join(site.products),
        )
    return table


def families_table(results: list[FamilyResult]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, title="timm attention families: one small model each, every site rewritten to bilstm")
    for column in ("family", "model", "sites", "attention modules", "rewrite", "forward", "distill", "ONNX", "reason"):
        table.add_column(column, overflow="fold")
    mark = {True: "✓", False: "✗"}
    for r in results:
        table.add_row(
            r.family, r.model, str(r.sites), str(r.attention_modules),
            mark[r.rewrite], mark[r.forward], mark[r.distill], mark[r.onnx], r.reason,
        )
    return table


def plan_table(summary: PlanSummary) -> Table:
    table = Table(box=box.SIMPLE_HEAD, title=f"plan at input {summary.input_size}: attention → substitute (MACs = FLOPs/2, batch 1)")
    for column in ("#", "site", "class", "heads×d", "substitute", "params M", "MACs M"):
        table.add_column(column, justify="right" if column in ("#", "params M", "MACs M") else "left", no_wrap=True)
    for s in summary.sites:
        table.add_row(
            str(s.index), s.path, s.class_name, f"{s.num_heads}×{s.head_dim}", s.substitute,
            _arrow(s.params_before, s.params_after, 1e6), _arrow(s.macs_before, s.macs_after, 1e6),
        )
    return table


def totals_table(summary: PlanSummary) -> Table:
    table = Table(box=box.SIMPLE_HEAD, title="totals")
    for column in ("model", "params (M)", "MACs (G)"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for totals in (summary.teacher, summary.student):
        table.add_row(totals.name, f"{totals.params / 1e6:.3f}", f"{totals.macs / 1e9:.4f}")
    change = summary.student.params / summary.teacher.params - 1, summary.student.macs / summary.teacher.macs - 1
    table.add_row("change", f"{change[0]:+.1%}", f"{change[1]:+.1%}")
    return table


def cost_tables(cost: dict[str, Any]) -> list[Table]:
    """Per-block and total hardware cost of `CostReport.to_json()`, with the GPU roofline beside the totals."""
    blocks = _text_table(cost_title(cost), block_columns(), block_rows(cost))
    totals = _text_table(f"hardware totals ({cost['gpu']}: roofline, batch 1)", total_columns(cost), total_rows(cost))
    totals.caption = NOTE
    return [blocks, totals]


def _text_table(title: str, columns: Row, rows: list[Row]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, title=title)
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def _arrow(before: int, after: int, scale: float) -> str:
    return f"{before / scale:.3f}→{after / scale:.3f}"


def search_table(report: dict[str, Any], width: int) -> Group:
    """The front of `SearchResult.to_json()`, cheapest first, then each uniform choice; the chosen mix starred. Where
    the table with the options' names is wider than `width` (many sites, long names), each option is written as a
    letter and a legend under the table names them, one a line."""
    options = list(report["options"])
    named = _front_table(report, {label: label for label in options})
    unbounded = Console(width=100_000)  # a measurement is capped at the console's width
    if Measurement.get(unbounded, unbounded.options, named).maximum <= width:
        return Group(named)
    letters = {label: chr(ord("a") + index) for index, label in enumerate(options)}
    return Group(_front_table(report, letters), *(Text(f"{letter} = {label}") for label, letter in letters.items()))


def _front_table(report: dict[str, Any], names: dict[str, str]) -> Table:
    """`search_table`'s table, each option written as `names` says."""
    from surgery.recipe import METRIC_UNITS

    axis, sites = report["axis"], list(report["sites"])
    unit, scale = METRIC_UNITS[axis]
    limit = f"budget {report['budget'][axis] * scale:.4g} {unit}, " if axis in report["budget"] else ""
    title = f"search front: predicted loss against {axis} ({limit}teacher {report['teacher']['cost'][axis] * scale:.4g} {unit})"
    table = Table(box=box.SIMPLE_HEAD, title=title)
    for column in ("", f"{axis} ({unit})", "predicted", *sites):
        table.add_column(column, justify="left" if column in ("", *sites) else "right", no_wrap=True)
    chosen = report["chosen"]["sites"]
    rows = [("★" if mix["sites"] == chosen else "", mix) for mix in report["front"]]
    rows += [(f"all {names[label]}" + ("" if mix["fits"] else " (over)"), mix) for label, mix in report["uniform"].items()]
    for mark, mix in rows:
        table.add_row(mark, f"{mix['cost'][axis] * scale:.4g}", f"{mix['predicted']:.4f}", *(names[mix["sites"][path]] for path in sites))
    return table
