"""benchmarks/batch_map.py without measuring: the budget, the rounds it times, and the tables and heatmaps it draws from a report."""

from __future__ import annotations

import itertools
import json
import sys

import pytest

from benchmarks import batch_map
from benchmarks.batch_map import BASELINE, Budget, Cell, Grid, crossover, markdown, plot, report_of, time_cell
from surgery.deploy.bench import Timing

GRID = Grid(sizes=(224, 384), batches=(1, 4), precisions=("fp32",), threads=(1, 2))
# FAR-Tiny / DeiT-Tiny: slower everywhere but at 384 px, batch 4; FAR-Tiny† faster from batch 1 at 384 px.
RATIOS = {("FAR-Tiny", 224): (1.5, 1.2), ("FAR-Tiny", 384): (1.3, 0.9), ("FAR-Tiny†", 224): (1.1, 1.05), ("FAR-Tiny†", 384): (0.8, 0.7)}


def cells() -> list[Cell]:
    out = []
    for size, (b, batch), threads in itertools.product(GRID.sizes, enumerate(GRID.batches), GRID.threads):
        base = 10.0 * batch * (size / 224) ** 2
        out.append(Cell(BASELINE, size, batch, "fp32", threads, 7, Timing(base, base * 0.9, base * 1.2)))
        for model in ("FAR-Tiny", "FAR-Tiny†"):
            ms = base * RATIOS[(model, size)][b]
            out.append(Cell(model, size, batch, "fp32", threads, 7, Timing(ms, ms * 0.95, ms * 1.1)))
    return out


@pytest.fixture
def report() -> dict:
    counts = {name: {"params_m": 5.7, "gmacs_224": 1.25, "gmacs_384": 4.68} for name in (BASELINE, "FAR-Tiny", "FAR-Tiny†")}
    return report_of(cells(), counts, GRID, Budget(runs=30, min_runs=7, warmup=3, cell_seconds=30.0), wall_s=600.0)


@pytest.mark.parametrize(("seconds_per_round", "rounds"), [(0.01, 30), (2.0, 15), (20.0, 7)])
def test_the_budget_gives_as_many_rounds_as_fit_between_its_bounds(seconds_per_round, rounds):
    assert Budget(runs=30, min_runs=7, warmup=3, cell_seconds=30.0).rounds(seconds_per_round) == rounds


def test_a_cell_runs_its_warmup_a_sizing_round_then_the_rounds_the_budget_allows(monkeypatch):
    calls = {"a": 0, "b": 0}
    runners = {name: lambda name=name: calls.__setitem__(name, calls[name] + 1) for name in calls}
    monkeypatch.setattr(Budget, "rounds", lambda self, seconds: 4)
    times = time_cell(runners, Budget(runs=30, min_runs=2, warmup=3, cell_seconds=1.0))
    assert calls == {"a": 3 + 1 + 4, "b": 3 + 1 + 4}
    assert [len(t) for t in times.values()] == [4, 4]


def test_crossover_names_the_smallest_faster_batch_or_says_there_is_none():
    measured = cells()
    assert crossover(measured, "FAR-Tiny", 384, "fp32", 1) == "faster from batch 4 (×0.90)"
    assert crossover(measured, "FAR-Tiny†", 384, "fp32", 1) == "faster from batch 1 (×0.80)"
    assert crossover(measured, "FAR-Tiny", 224, "fp32", 1) == "not faster up to batch 4 (best ×1.20 at batch 4)"


def test_markdown_has_a_table_per_precision_and_threads_with_a_row_per_size_and_batch(report):
    text = markdown(report)
    where = report["machine"]
    assert f"{where['cpu']}, {where['isa']}, ONNX Runtime {where['onnxruntime']}" in text and report["date"] in text
    assert text.count("### fp32, 1 thread\n") == 1 and text.count("### fp32, 2 threads\n") == 1
    assert "| 384 | 4 | 7 | 117.55 (105.80–141.06) | 105.80 (100.51–116.38) | 82.29 (78.17–90.51) | ×0.90 | ×0.70 | 29.39 |" in text
    assert "- FAR-Tiny vs DeiT-Tiny at 384 px: faster from batch 4 (×0.90)" in text


def test_the_heatmaps_are_written(report, tmp_path):
    plot(report, tmp_path / "map.png")
    assert (tmp_path / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_render_only_redraws_from_the_json_without_measuring(report, tmp_path, monkeypatch):
    (tmp_path / "map.json").write_text(json.dumps(report))
    monkeypatch.setattr(sys, "argv", ["batch_map", "--render-only", "--out", str(tmp_path / "map")])
    monkeypatch.setattr(batch_map, "measure", lambda *args: pytest.fail("--render-only measured"))
    batch_map.main()
    assert "| 224 | 1 | 7 |" in (tmp_path / "map.md").read_text() and (tmp_path / "map.png").exists()


def test_the_token_table_counts_deit_tiny_attention_and_far_steps():
    row = batch_map._token_table((224,)).splitlines()[2]
    assert row == "| 224 | 197 | 14.9 | 87.1 | 15% | 0.179 | 14,184 |"  # 14x14 patches + class token; 12 blocks x 3 heads x 2 directions x 197
