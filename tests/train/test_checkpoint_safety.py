"""A run directory is untrusted input: its checkpoints are read without unpickling, and damage is one clear line."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from surgery.cli import app
from surgery.errors import SurgeryError
from surgery.runs.state import RunProgress
from surgery.train.checkpoint import latest_checkpoint, load_state, restore_rng, rng_state, save_checkpoint


class _Payload:
    """Unpickling this runs `os.system`; a safe reader never does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    weights = {"student": {"w": torch.ones(2)}}
    return save_checkpoint(tmp_path / "checkpoints", "stage00-done", weights, {"stage_index": 0}, {"rng": rng_state()})


def test_the_training_state_round_trips_every_generator(checkpoint: Path):
    _, training = load_state(checkpoint)
    restore_rng(training["rng"])
    first = (torch.rand(3), np.random.rand(3), random.random())
    restore_rng(training["rng"])
    assert torch.equal(first[0], torch.rand(3)) and (first[1] == np.random.rand(3)).all() and first[2] == random.random()


def test_a_pickled_payload_is_refused_and_never_runs(checkpoint: Path, tmp_path: Path):
    marker = tmp_path / "ran"
    torch.save({"rng": _Payload(marker)}, checkpoint / "training.pt")
    with pytest.raises(SurgeryError, match=r"training\.pt: holds Python objects besides tensors, numbers and strings, which are never unpickled here"):
        load_state(checkpoint)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_a_damaged_or_missing_training_state_is_one_line(checkpoint: Path, damage: str):
    path = checkpoint / "training.pt"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:40])
    else:
        path.unlink()
    with pytest.raises(SurgeryError, match=r"training\.pt: ") as raised:
        load_state(checkpoint)
    assert "\n" not in str(raised.value)


def test_an_edited_progress_file_is_named(checkpoint: Path):
    (checkpoint / "state.json").write_text('{"stage_index": ')
    with pytest.raises(SurgeryError, match=r"state\.json: cannot be read as a checkpoint's progress"):
        load_state(checkpoint)


@pytest.mark.parametrize("pointer", ["../elsewhere", "/etc", "", "stage99-done"])
def test_latest_must_name_a_checkpoint_folder_inside_the_run(checkpoint: Path, pointer: str):
    (checkpoint.parent / "latest").write_text(pointer)
    with pytest.raises(SurgeryError, match="which is no checkpoint folder in"):
        latest_checkpoint(checkpoint.parent)


@pytest.mark.slow
def test_resuming_a_run_with_a_planted_payload_exits_2_without_running_it(finished_run, run_copy, tmp_path: Path):
    marker = tmp_path / "ran"
    latest = latest_checkpoint(run_copy.checkpoints)
    torch.save({"rng": _Payload(marker)}, latest / "training.pt")
    result = CliRunner().invoke(app, ["apply", str(finished_run.recipe), "--out", str(run_copy.root), "--resume"])
    assert result.exit_code == 2, result.output
    assert "training.pt: holds Python objects besides tensors, numbers and strings" in result.stderr
    assert not marker.exists()


@pytest.mark.parametrize("edit", [{"stage_index": "1"}, {"step": -4}, {"complete": None}, {"record": [1]}])
def test_a_progress_file_with_edited_values_is_refused_naming_it(edit: dict):
    saved = {"stage_index": 0, "complete": True, "epoch": 0, "step": 0, "pruned": False, "results": {}, "record": None, **edit}
    with pytest.raises(SurgeryError, match=r"^ckpt/state\.json: "):
        RunProgress.from_json(saved, Path("ckpt/state.json"))
