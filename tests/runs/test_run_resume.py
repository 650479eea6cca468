"""A run killed with SIGKILL mid-epoch resumes to exactly the weights of an unbroken run, hardware-aware finetuning's
programming draws included."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from surgery.train.checkpoint import latest_checkpoint, load_state
from tests.tiny import recipe_data, write_recipe

STEPS_PER_EPOCH = 11  # 1437 training digits // batch 128, last partial batch dropped


def apply(recipe: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "surgery", "apply", str(recipe), "--out", str(out), *extra])


def records(out: Path) -> list[dict]:
    path = out / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def kill_during_distill(process: subprocess.Popen, out: Path) -> None:
    """SIGKILL once the distill stage is inside its second epoch (a checkpoint behind it, work ahead)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if any(r["stage_index"] == 1 and r["kind"] == "step" and r["step"] > STEPS_PER_EPOCH + 1 for r in records(out)):
            process.send_signal(signal.SIGKILL)
            process.wait()
            return
        time.sleep(0.02)
    raise AssertionError("the run ended (or stalled) before it could be killed mid-distill")


def assert_checkpoints_whole(out: Path) -> None:
    root = out / "checkpoints"
    for checkpoint in (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        progress, _ = load_state(checkpoint)
        assert {"stage_index", "epoch", "step"} <= set(progress)
        assert all(load_file(f) for f in checkpoint.glob("*.safetensors"))
    assert latest_checkpoint(root).is_dir()


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_unbroken_run(tmp_path):
    data = recipe_data(trained=True)
    data["stages"][4]["noise"] = {"sigma": 0.05}  # the finetune after the kill draws a programming per step
    recipe = write_recipe(tmp_path, data)
    assert apply(recipe, tmp_path / "unbroken").wait() == 0
    killed = tmp_path / "killed"
    kill_during_distill(apply(recipe, killed), killed)
    assert_checkpoints_whole(killed)
    progress, _ = load_state(latest_checkpoint(killed / "checkpoints"))
    lost = [r for r in records(killed) if r["kind"] == "step" and r["stage_index"] == 1 and r["step"] > progress["step"]]
    assert progress["stage_index"] == 1 and lost, "the kill should land between two checkpoints of the distill stage"
    assert apply(recipe, killed, "--resume").wait() == 0
    expected, resumed = (load_file(d / "model.safetensors") for d in (tmp_path / "unbroken", killed))
    assert expected.keys() == resumed.keys()
    assert all(torch.equal(expected[k], resumed[k]) for k in expected)
    steps = [(r["stage_index"], r["step"]) for r in records(killed) if r["kind"] == "step"]
    assert steps == sorted(set(steps)), "metrics.jsonl must not repeat the steps redone after resuming"
