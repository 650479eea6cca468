"""Errors a user can fix. The CLI prints each as one line on stderr and exits with code 2."""

from __future__ import annotations

from dataclasses import dataclass


class SurgeryError(Exception):
    """Bad input (recipe, model, selection, substitute): says where and what was expected."""


@dataclass(frozen=True)
class Location:
    """A place in a recipe file (1-based line and column), or a `--set` override (line 0: no position)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}" if self.line else self.file


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a recipe, at one place."""

    location: Location | None
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class RecipeError(SurgeryError):
    """A recipe that failed validation; holds every problem found, one line each."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(map(str, problems)))


class FieldError(SurgeryError):
    """A problem caused by one field of the recipe (`field`, its key path from the recipe's root), found while
    reading what the field points at; whoever holds the recipe puts its file:line in front (`locate`)."""

    def __init__(self, field: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.field = field

    def locate(self, where: Location | None) -> SurgeryError:
        return SurgeryError(f"{where}: {self}") if where else self
