"""Atomic checkpoints: safetensors weights, torch-saved optimizer/scheduler/RNG state, JSON progress.

A checkpoint is a directory written under a temporary name and renamed into
place; `latest` (a one-line file replaced atomically) names the newest complete
one. A crash at any instant leaves either the old or the new checkpoint, never
half of one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

KEEP = 2


def save_checkpoint(root: Path, name: str, weights: dict[str, dict[str, torch.Tensor]], state: dict, training: dict) -> Path:
    """Write `root/name/` with one safetensors file per entry of `weights`, then point `latest` at it."""
    final, staging = root / name, root / f".{name}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for label, tensors in weights.items():
        save_file(_plain(tensors), staging / f"{label}.safetensors")
    torch.save(training, staging / "training.pt")
    write_text_atomic(staging / "state.json", json.dumps(state, indent=2))
    _fsync_dir(staging)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(staging, final)
    write_text_atomic(root / "latest", name)
    _prune_old(root, keep={name})
    return final


def latest_checkpoint(root: Path) -> Path | None:
    pointer = root / "latest"
    return root / pointer.read_text().strip() if pointer.exists() else None


def load_weights(checkpoint: Path, label: str) -> dict[str, torch.Tensor]:
    return load_file(checkpoint / f"{label}.safetensors")


def load_state(checkpoint: Path) -> tuple[dict, dict]:
    """(progress JSON, training state with optimizer/scheduler/RNG)."""
    state = json.loads((checkpoint / "state.json").read_text())
    return state, torch.load(checkpoint / "training.pt", weights_only=False)


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def seed_everything(seed: int) -> None:
    """Same seed, same run: the teacher's initial weights, dropout and shuffles all follow from it."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def write_text_atomic(path: Path, text: str) -> None:
    """Write to a sibling temporary file, fsync, then rename over `path`."""
    staging = path.with_name(f".{path.name}.tmp")
    with open(staging, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(staging, path)


def _plain(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses shared or strided storage; store independent contiguous copies."""
    return {key: value.detach().cpu().contiguous().clone() for key, value in tensors.items()}


def _fsync_dir(directory: Path) -> None:
    for path in directory.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


def _prune_old(root: Path, keep: set[str]) -> None:
    done = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.stat().st_mtime)
    for stale in done[:-KEEP]:
        if stale.name not in keep:
            shutil.rmtree(stale)
