"""A cost report (`CostReport.to_json()`) as rows of text, shared by the CLI's rich tables and the run report's Markdown.

Per-block cells read `teacher→student`; the totals put the two models on
separate rows with the student/teacher ratio below, and the GPU roofline beside.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Row = list[str]

NOTE = (
    "written: crossbars reprogrammed every inference; lifetime: inferences until they wear out; "
    "ADC: share of the energy spent in ADCs; GPU: roofline of the same ops, one after another."
)

# (JSON key, column title, how one value is written)
_METRICS: list[tuple[str, str, Callable[[float], str]]] = [
    ("latency_s", "latency µs", lambda v: f"{v * 1e6:.1f}"),
    ("energy_j", "energy µJ", lambda v: f"{v * 1e6:.2f}"),
    ("traffic_bytes", "traffic kB", lambda v: f"{v / 1e3:.0f}"),
    ("crossbars", "crossbars", lambda v: f"{v:.0f}"),
    ("write_crossbars", "written", lambda v: f"{v:.0f}"),
    ("area_mm2", "area mm²", lambda v: f"{v:.3f}"),
    ("adc_share", "ADC", lambda v: f"{v:.0%}"),
]
_GPU = _METRICS[:2]  # latency and energy


def cost_title(cost: dict[str, Any]) -> str:
    size = "×".join(map(str, cost["input_size"]))
    return f"{cost['device']} crossbars, {cost['policy']} policy, input {size}, batch 1: teacher→student"


def block_columns() -> Row:
    return ["block", *(title for _, title, _ in _METRICS)]


def block_rows(cost: dict[str, Any]) -> list[Row]:
    """One row per block in the teacher's order (blocks only one model has show `–` for the other), then the total."""
    teacher = {row["block"]: row for row in cost["teacher"]["blocks"]}
    student = {row["block"]: row for row in cost["student"]["blocks"]}
    rows = [[name, *_pairs(teacher.get(name), student.get(name))] for name in {**teacher, **student}]
    return rows + [["total", *_pairs(cost["teacher"], cost["student"])]]


def total_columns(cost: dict[str, Any]) -> Row:
    gpu = [f"{cost['gpu']} {title}" for _, title, _ in _GPU]
    return ["model", *(title for _, title, _ in _METRICS), "chips", "lifetime", *gpu]


def total_rows(cost: dict[str, Any]) -> list[Row]:
    """teacher, student, and their ratio (student / teacher; none for the ADC share)."""
    rows = [[name, *_totals(cost[name])] for name in ("teacher", "student")]
    teacher, student = cost["teacher"], cost["student"]
    ratios = [_ratio(teacher[key], student[key]) if key != "adc_share" else "" for key, _, _ in _METRICS]
    gpu = [_ratio(teacher["gpu"][key], student["gpu"][key]) for key, _, _ in _GPU]
    return [*rows, ["ratio", *ratios, "", "", *gpu]]


def markdown_table(columns: Row, rows: list[Row]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def cost_markdown(cost: dict[str, Any]) -> list[str]:
    """The two tables under a heading, for report.md."""
    lines = ["## Hardware cost", "", cost_title(cost), "", *markdown_table(block_columns(), block_rows(cost)), ""]
    return lines + [*markdown_table(total_columns(cost), total_rows(cost)), "", NOTE]


def _pairs(teacher: dict[str, Any] | None, student: dict[str, Any] | None) -> Row:
    return [f"{_cell(teacher, key, write)}→{_cell(student, key, write)}" for key, _, write in _METRICS]


def _cell(row: dict[str, Any] | None, key: str, write: Callable[[float], str]) -> str:
    return "–" if row is None else write(row[key])


def _totals(model: dict[str, Any]) -> Row:
    lifetime = model["lifetime_inferences"]
    gpu = [write(model["gpu"][key]) for key, _, write in _GPU]
    written = [write(model[key]) for key, _, write in _METRICS]
    return [*written, str(model["chips"]), "unlimited" if lifetime is None else f"{lifetime:.3g}", *gpu]


def _ratio(teacher: float, student: float) -> str:
    return f"×{student / teacher:.2f}" if teacher else "–"
