"""Recipe data before validation: nested dicts and lists with a source map from key paths to places."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from surgery.errors import Location

KeyPath = tuple[str | int, ...]
"""Keys and list indices from the top of a recipe down to one value, e.g. ("rewrites", 0, "params")."""

Locations = dict[KeyPath, Location]
"""Where each key (for mapping entries) or item (for list entries) was written."""


def nearest_location(locations: Locations, path: KeyPath) -> Location | None:
    """The location recorded for `path`, or for its nearest recorded parent."""
    for end in range(len(path), -1, -1):
        if path[:end] in locations:
            return locations[path[:end]]
    return None


def subtree_paths(value: Any, path: KeyPath = ()) -> Iterator[KeyPath]:
    """`path` and the path of every key and item below it, parents first."""
    yield path
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield from subtree_paths(child, (*path, key))


def deep_merge(base: Any, child: Any) -> Any:
    """`child` over `base`: mappings merge key by key, anything else (lists included) is replaced whole."""
    if not (isinstance(base, dict) and isinstance(child, dict)):
        return child
    merged = dict(base)
    for key, value in child.items():
        merged[key] = deep_merge(base[key], value) if key in base else value
    return merged


def merged_locations(merged: Any, base: Locations, child: Locations) -> Locations:
    """Source map of a merge: each path points where its winning value was written."""
    return {path: child.get(path) or base[path] for path in subtree_paths(merged) if path in child or path in base}


def relocate(locations: Locations, path: KeyPath, value: Any, location: Location) -> None:
    """Points `path` and everything below it, now holding `value`, at `location`; forgets the old places."""
    for old in [p for p in locations if p[: len(path)] == path]:
        del locations[old]
    for new in subtree_paths(value, path):
        locations[new] = location
