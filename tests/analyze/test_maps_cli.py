"""`surgery analyze RUN --maps` on the tiny digits run: correlations in JSON and in the table, figures where asked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from surgery.cli import app


@pytest.mark.slow
def test_maps_report_correlations_per_block_and_head_and_write_figures(run_copy):  # a copy: the maps go into the run
    args = ["analyze", str(run_copy.root), "--batches", "1", "--batch-size", "16", "--maps", "--map-images", "4", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    maps = json.loads(result.stdout)["maps"]
    assert maps["images"] == 4
    assert [(b["block"], b["site"]) for b in maps["blocks"]] == [("blocks.0", "blocks.0.attn"), ("blocks.1", "blocks.1.attn")]
    for block in maps["blocks"]:
        assert all(-1 <= block[name] <= 1 for name in ("attention", "attribution", "attribution_off_diagonal"))
        assert len(block["heads"]) == 2 and all(set(h) == {"forward", "backward", "both"} for h in block["heads"])
    figures = [Path(p) for p in maps["figures"]]
    assert [p.name for p in figures] == ["overview.png", "blocks.0.attn.png", "blocks.1.attn.png"]
    assert all(p.parent == run_copy.root / "plots" / "dependency" and p.stat().st_size > 0 for p in figures)


@pytest.mark.slow
def test_maps_print_a_table_of_correlations_and_go_to_out(finished_run, tmp_path):
    args = ["analyze", str(finished_run.run.root), "--batches", "1", "--batch-size", "16", "--maps", "--map-images", "2", "--out", str(tmp_path / "maps")]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Spearman ρ over 2 validation images" in result.stdout and "blocks.1.attn" in result.stdout
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == ["blocks.0.attn.png", "blocks.1.attn.png", "overview.png"]


def test_maps_need_a_run():
    result = CliRunner().invoke(app, ["analyze", "recipes/quickstart.yaml", "--maps"])
    assert result.exit_code == 2 and "--maps needs a finished run" in result.stderr


def test_out_needs_maps(tmp_path):
    result = CliRunner().invoke(app, ["analyze", "recipes/quickstart.yaml", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "it needs --maps" in result.stderr
