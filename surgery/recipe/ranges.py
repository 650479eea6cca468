"""The layer-range syntax of selectors ("0-5,8"): parsed once, here, for the schema and the selector."""

from __future__ import annotations

import re
from collections.abc import Sequence

_ITEM = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_layers(spec: str | Sequence[int]) -> set[int]:
    """Site indices named by `spec`: a list of ints, or "A-B,C" with inclusive ranges.

    Raises:
        ValueError: on bad syntax, a reversed range or a negative index.

    Example:
        >>> sorted(parse_layers("0-2, 5"))
        [0, 1, 2, 5]
    """
    if not isinstance(spec, str):
        return _checked_indices(spec)
    indices: set[int] = set()
    for item in spec.split(","):
        indices |= _parse_item(item, spec)
    return indices


def _parse_item(item: str, spec: str) -> set[int]:
    match = _ITEM.match(item)
    if match is None:
        raise ValueError(f"bad layer range {item.strip()!r} in {spec!r}; expected e.g. '0-5,8'")
    start = int(match[1])
    stop = int(match[2]) if match[2] is not None else start
    if stop < start:
        raise ValueError(f"reversed layer range {item.strip()!r} in {spec!r}; write it low-high")
    return set(range(start, stop + 1))


def _checked_indices(indices: Sequence[int]) -> set[int]:
    if any(index < 0 for index in indices):
        raise ValueError(f"layer indices must be >= 0, got {list(indices)}")
    return set(indices)
