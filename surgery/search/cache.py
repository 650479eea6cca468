"""What a search keeps in its directory, named by a hash of everything it depends on, so a second search reuses it.

A budget is in no key: searching again with another budget trains and prices nothing. Change the model, the
data, the seed, the teacher's stages, the options, the device or the predictor, and the key changes with it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from surgery.errors import SurgeryError


def cache_key(*parts: Any) -> str:
    """A short hash of JSON-able `parts` (keys sorted), the same in every process and on every machine."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_cached(path: Path) -> Any | None:
    """The JSON at `path`, or None when nothing is cached there yet."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise SurgeryError(f"{path}: a damaged search cache ({error}); delete it to recompute") from error


def write_cached(path: Path, value: Any) -> None:
    from surgery.train.checkpoint import write_text_atomic  # torch comes with it

    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(value, indent=1, sort_keys=True))
