"""`--set dotted.key=value` overrides: their syntax, and how one edits recipe data before validation.

Precedence: a later source wins, base recipe < the recipe that extends it < each `--set`, in the order given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from surgery.errors import Location, Problem, RecipeError
from surgery.recipe.tree import KeyPath, Locations, relocate


@dataclass(frozen=True)
class Override:
    """One `--set` text split into its key path and the YAML text of its value."""

    keys: tuple[str, ...]
    value_text: str
    location: Location


def parse_override(text: str) -> Override:
    """Splits "stages.1.lr=1e-4" at the first "=" and the key at dots.

    Example:
        >>> parse_override("rewrites.0.params.heads=4").keys
        ('rewrites', '0', 'params', 'heads')
    """
    location = Location(f"--set {text}", 0, 0)
    key, sep, value = text.partition("=")
    keys = tuple(part.strip() for part in key.split("."))
    if not sep or not all(keys):
        raise RecipeError([Problem(location, "expected dotted.key=value, e.g. stages.0.lr=3e-4")])
    return Override(keys, value, location)


def set_value(data: dict[str, Any], locations: Locations, override: Override, value: Any) -> None:
    """Writes `value` at the override's key path, creating missing mapping keys on the way.

    Raises:
        RecipeError: an index out of range, or a key below a value that is neither mapping nor list.
    """
    parent: Any = data
    path: KeyPath = ()
    for segment in override.keys[:-1]:
        key = _resolve_key(parent, segment, path, override)
        if isinstance(parent, dict) and parent.get(key) is None:
            parent[key] = {}
        parent, path = parent[key], (*path, key)
    key = _resolve_key(parent, override.keys[-1], path, override)
    parent[key] = value
    relocate(locations, (*path, key), value, override.location)


def _resolve_key(container: Any, segment: str, path: KeyPath, override: Override) -> str | int:
    """A mapping takes any key; a list takes an index in range; nothing else can be indexed."""
    where = ".".join(map(str, path)) or "the top level"
    if isinstance(container, dict):
        return segment
    if not isinstance(container, list):
        message = f"cannot set {segment!r} inside {where}, which is {container!r}"
    elif not segment.isdigit() or int(segment) >= len(container):
        message = f"no item {segment!r} in {where}: expected an index below its length, {len(container)}"
    else:
        return int(segment)
    raise RecipeError([Problem(override.location, message)])
