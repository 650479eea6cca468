"""A finished run directory is untrusted input: each kind of damage is one line naming the file, exit 2."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from surgery.cli import app
from surgery.runs import RunDir

pytestmark = pytest.mark.slow  # every test damages a copy of the session's finished run (tests/conftest.py)


def _edit_record(change: Callable[[dict], None]) -> Callable[[RunDir], None]:
    def edit(run: RunDir) -> None:
        record = json.loads(run.record.read_text())
        change(record)
        run.record.write_text(json.dumps(record))

    return edit


def _truncate(path: Callable[[RunDir], Path]) -> Callable[[RunDir], None]:
    return lambda run: path(run).write_bytes(path(run).read_bytes()[:1000])


DAMAGES = {
    "truncated student weights": (_truncate(lambda run: run.student_weights), "model.safetensors: not a readable safetensors file (truncated or damaged)"),
    "student weights of another model": (
        lambda run: shutil.copy(run.teacher_weights, run.student_weights),
        "model.safetensors: does not fit the model rebuilt from the run's recipe and record",
    ),
    "missing teacher weights": (lambda run: run.teacher_weights.unlink(), "teacher.safetensors: missing; the run or checkpoint is incomplete"),
    "record not JSON": (lambda run: run.record.write_text("{"), "surgery.json: cannot be read as a surgery record"),
    "record without a key": (_edit_record(lambda r: r["sites"][0].pop("substitute")), "surgery.json: a surgery record without a valid 'substitute'"),
    "record of a site the model lacks": (
        _edit_record(lambda r: r["sites"][0].update(path="nowhere")),
        "surgery.json: names site nowhere, which the rebuilt student does not have",
    ),
    "record of an unknown substitute": (
        _edit_record(lambda r: r["sites"][0].update(substitute="zzz")),
        "surgery.json: site blocks.0.attn: its recorded zzz config cannot be rebuilt",
    ),
    "record of another project version": (
        _edit_record(lambda r: r.update(format=2, surgery="9.0.0")),
        "surgery.json: written by surgery 9.0.0 in record format 2; this is surgery",
    ),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_run_is_refused_in_one_line_naming_the_file(run_copy: RunDir, damage: str):
    harm, message = DAMAGES[damage]
    harm(run_copy)
    result = CliRunner().invoke(app, ["evaluate", str(run_copy.root)])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr


def test_a_record_states_its_format_and_the_version_that_wrote_it(run_copy: RunDir):
    record = json.loads(run_copy.record.read_text())
    assert record["format"] == 1 and record["surgery"]
