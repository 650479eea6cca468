"""Figures: matplotlib without a display, and PNGs written whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """`matplotlib.pyplot` on the Agg backend (no display needed); imported on first use, it is slow to import."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: Path, dpi: int = 120) -> Path:
    """Write `figure` to `path` through a temporary file in the same folder, then close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp{path.suffix}")
    try:
        figure.savefig(staging, dpi=dpi)
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)
        pyplot().close(figure)
    return path
