"""A named registry: one generic class, one instance per kind of thing registered."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(LookupError):
    """A registry lookup missed; carries the close matches and every known name."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind, self.name, self.known = kind, name, known
        self.suggestions = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(map(repr, self.suggestions))}? " if self.suggestions else ""
        super().__init__(f"unknown {kind} {name!r}; {hint}known: {', '.join(known) or '(none)'}")


class Registry(Generic[T]):
    """Maps snake_case names to objects; duplicates are errors, misses suggest close names.

    Example:
        >>> SHAPES: Registry[type] = Registry("shape")
        >>> @SHAPES.register("square")
        ... class Square: ...
        >>> SHAPES.get("square") is Square
        True
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            self.add(name, obj)
            return obj

        return add

    def add(self, name: str, obj: T) -> None:
        if name in self._items and self._items[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} is already registered to {self._items[name]!r}")
        self._items[name] = obj

    def get(self, name: str) -> T:
        if name not in self._items:
            raise UnknownNameError(self.kind, name, self.names())
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
