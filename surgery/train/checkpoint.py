"""Atomic checkpoints: safetensors weights, optimizer/scheduler/RNG state, JSON progress.

A run directory may come from someone else, so nothing in it is unpickled:
the training state (tensors, numbers, strings and containers of them, RNG
states included) is read with `torch.load(weights_only=True)`, which refuses
anything that would run code.

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
from collections.abc import Callable
from pathlib import Path
from pickle import UnpicklingError
from typing import Any, TypeVar

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from surgery.errors import SurgeryError
from surgery.models import one_line

KEEP = 2
T = TypeVar("T")


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
    """The checkpoint `latest` names, which must be a folder directly inside `root`."""
    pointer = root / "latest"
    if not pointer.exists():
        return None
    name = pointer.read_text().strip()
    if not name or Path(name).name != name or name in (".", "..") or not (root / name).is_dir():
        raise SurgeryError(f"{pointer}: names {name!r}, which is no checkpoint folder in {root}")
    return root / name


def load_weights(checkpoint: Path, label: str) -> dict[str, torch.Tensor]:
    """The checkpoint's `label` tensors, refused in one line when missing or damaged."""
    path = checkpoint / f"{label}.safetensors"
    return _reading(path, lambda: load_file(path))


def load_weights_into(module: nn.Module, path: Path) -> None:
    """Load a safetensors file written by `save_model` into `module`: every name and shape must match."""
    _reading(path, lambda: load_model(module, str(path), strict=True))


def read_json(path: Path, what: str) -> Any:
    """A JSON file of a run or checkpoint, refused in one line naming it when missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as error:
        raise SurgeryError(f"{path}: missing; the run or checkpoint is incomplete") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SurgeryError(f"{path}: cannot be read as {what}: {error}") from error


def _reading(path: Path, read: Callable[[], T]) -> T:
    try:
        return read()
    except FileNotFoundError as error:
        raise SurgeryError(f"{path}: missing; the run or checkpoint is incomplete") from error
    except (OSError, SafetensorError) as error:
        raise SurgeryError(f"{path}: not a readable safetensors file (truncated or damaged): {one_line(error)}") from error
    except RuntimeError as error:
        raise SurgeryError(f"{path}: does not fit the model rebuilt from the run's recipe and record: {one_line(error)}") from error


def load_state(checkpoint: Path) -> tuple[dict, dict]:
    """(progress JSON, training state with optimizer/scheduler/RNG), each refused in one line when unreadable."""
    progress, training = checkpoint / "state.json", checkpoint / "training.pt"
    state = read_json(progress, "a checkpoint's progress")
    try:
        return state, torch.load(training, weights_only=True)
    except UnpicklingError as error:
        raise SurgeryError(f"{training}: holds Python objects besides tensors, numbers and strings, which are never unpickled here (written by an older version, or by someone else)") from error
    except (OSError, RuntimeError, EOFError) as error:
        raise SurgeryError(f"{training}: not a training state this version can read (damaged or missing): {one_line(error)}") from error


def rng_state() -> dict:
    """Every generator's state as tensors, numbers and tuples: what `torch.load(weights_only=True)` reads back."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    numpy = (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss)
    return {"torch": torch.get_rng_state(), "numpy": numpy, "python": random.getstate()}


def seed_everything(seed: int) -> None:
    """Same seed, same run: the teacher's initial weights, dropout and shuffles all follow from it."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    random.setstate(state["python"])


def save_model_atomic(module: nn.Module, path: Path) -> None:
    """safetensors' `save_model` to a sibling temporary file, fsynced, then renamed over `path`."""
    staging = path.with_name(f".{path.name}.tmp")
    save_model(module, str(staging))
    with open(staging, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(staging, path)


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
