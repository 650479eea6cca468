"""A whole run on the embedded digits: report contract, refusal to overwrite, replay in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from surgery.cli import app
from surgery.errors import SurgeryError
from surgery.recipe import load_recipe
from surgery.runs import RunDir, apply_recipe, load_run

pytestmark = pytest.mark.slow  # every test reads the session's finished run (tests/conftest.py)


@pytest.fixture
def run(finished_run) -> RunDir:
    """The session's finished run, to read only."""
    return finished_run.run


def test_report_holds_teacher_student_pruned(run):
    report = json.loads(run.report_json.read_text())
    for name in ("teacher", "student", "pruned"):
        assert 0 <= report[name]["top1"] <= 100
        assert report[name]["params"] > 0 and report[name]["macs"] > 0
    assert 0 < report["pruned"]["kept_fraction"] <= 1
    assert report["pruned"]["params"] <= report["student"]["params"]
    assert [s["kind"] for s in report["stages"]] == ["fit", "distill", "evaluate", "prune", "finetune", "evaluate"]
    assert all(s["wall_s"] >= 0 for s in report["stages"])
    assert (run.plots / "kept_units.png").stat().st_size > 0
    assert "| pruned |" in run.report_md.read_text()


def test_report_prices_the_final_student_against_the_teacher(run):
    report = json.loads(run.report_json.read_text())
    cost = report["cost"]
    assert cost["teacher"]["macs"] == pytest.approx(report["teacher"]["macs"], rel=1e-6)
    assert cost["student"]["macs"] == pytest.approx(report["pruned"]["macs"], rel=1e-6)  # the shrunk LSTMs are priced
    assert cost["student"]["write_crossbars"] == 0 < cost["teacher"]["write_crossbars"]
    assert sum(row["block"].startswith("blocks.") for row in cost["student"]["blocks"]) == 2
    assert "## Hardware cost" in run.report_md.read_text() and (run.plots / "energy.png").stat().st_size > 0


def test_existing_run_is_not_overwritten_without_force(finished_run, run_copy):
    before = run_copy.student_weights.read_bytes()
    with pytest.raises(SurgeryError, match="--resume .* or --force"):
        apply_recipe(load_recipe(finished_run.recipe), run_copy.root)
    assert run_copy.student_weights.read_bytes() == before


def test_replay_in_a_fresh_process_matches_the_run(run, tmp_path):
    student = load_run(run.root)
    images = torch.randn(4, 1, 8, 8)
    torch.save(images, tmp_path / "probe.pt")
    expected = student(images)
    code = (
        "import sys, torch; from surgery.runs import load_run; "
        "s = load_run(sys.argv[1]); x = torch.load(sys.argv[2] + '/probe.pt'); "
        "torch.save(s(x), sys.argv[2] + '/probe_out.pt')"
    )
    subprocess.run([sys.executable, "-c", code, str(run.root), str(tmp_path)], check=True)
    assert torch.equal(torch.load(tmp_path / "probe_out.pt"), expected)
    report = json.loads(run.report_json.read_text())
    assert sum(p.numel() for p in student.parameters()) == report["pruned"]["params"]


def test_evaluate_cli_reproduces_the_report_from_disk(run):
    result = CliRunner().invoke(app, ["evaluate", str(run.root), "--json"])
    assert result.exit_code == 0, result.output
    measured, report = json.loads(result.stdout), json.loads(run.report_json.read_text())
    assert measured["student"]["top1"] == pytest.approx(report["pruned"]["top1"])
    assert measured["teacher"]["top1"] == pytest.approx(report["teacher"]["top1"])
    assert measured["student"]["params"] == report["pruned"]["params"]
