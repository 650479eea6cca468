"""Turns pydantic validation errors into one-line problems at the place in the file they concern."""

from __future__ import annotations

import difflib
import re
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from surgery.errors import Problem
from surgery.recipe.schema import Recipe
from surgery.recipe.tree import KeyPath, Locations, nearest_location

_QUOTED = re.compile(r"'([^']*)'")
_SCALARS = (str, int, float, bool, type(None))


def validation_problems(error: ValidationError, data: Any, locations: Locations) -> list[Problem]:
    """One problem per error, in file order; the alternatives of one plain union share a line."""
    merged: dict[KeyPath, list[tuple[str, str]]] = {}
    for details in error.errors():
        path, tag_path = _data_path(details["loc"], data, details["type"] == "missing")
        merged.setdefault(_problem_path(details, path), []).append(_message(details, tag_path))
    problems = [_problem(path, messages, locations) for path, messages in merged.items()]
    return sorted(problems, key=_reading_order)


def _problem(path: KeyPath, messages: list[tuple[str, str]], locations: Locations) -> Problem:
    """Joins (what was expected, what was given) pairs: "expected a valid string or a valid list, got 2.5"."""
    wanted = [messages[0][0], *(what.removeprefix("expected ") for what, _ in messages[1:])]
    where = ".".join(map(str, path)) or "recipe"
    return Problem(nearest_location(locations, path), f"{where}: {' or '.join(wanted)}{messages[0][1]}")


def _reading_order(problem: Problem) -> tuple[str, int, int]:
    where = problem.location
    return (where.file, where.line, where.column) if where else ("", 0, 0)


def _problem_path(details: ErrorDetails, path: KeyPath) -> KeyPath:
    """A bad tag is reported at the `kind` key that holds it."""
    return (*path, "kind") if details["type"] == "union_tag_invalid" else path


def _data_path(loc: tuple[str | int, ...], data: Any, missing: bool) -> tuple[KeyPath, KeyPath]:
    """The error's path in the data (union labels and tags dropped), and the path with tags kept.

    Pydantic's loc names the branch of a union it tried ('distill', 'list[int]'); those
    names are not keys of the file. Only a missing key ends a path without being in the data.
    """
    path: KeyPath = ()
    tag_path: KeyPath = ()
    for index, segment in enumerate(loc):
        if _holds(data, segment):
            path, tag_path, data = (*path, segment), (*tag_path, segment), data[segment]
        elif missing and index == len(loc) - 1:
            path, tag_path = (*path, segment), (*tag_path, segment)
        elif isinstance(data, dict) and data.get("kind") == segment:
            tag_path = (*tag_path, segment)
    return path, tag_path


def _holds(data: Any, segment: str | int) -> bool:
    if isinstance(data, dict):
        return segment in data
    return isinstance(data, list) and isinstance(segment, int) and 0 <= segment < len(data)


def _message(details: ErrorDetails, tag_path: KeyPath) -> tuple[str, str]:
    """What was expected, and what was given (with a hint), as two parts of one sentence."""
    kind, ctx, given = details["type"], details.get("ctx", {}), details["input"]
    if kind == "extra_forbidden":
        return _unknown(str(tag_path[-1]), _keys_at(tag_path[:-1]), "key"), ""
    if kind == "union_tag_invalid":
        return _unknown(ctx["tag"], _QUOTED.findall(ctx["expected_tags"]), "kind"), ""
    if kind == "union_tag_not_found":
        return f"missing key {ctx['discriminator']}; allowed kinds: {', '.join(_kinds_at(tag_path))}", ""
    if kind == "missing":
        return f"missing required {'key' if isinstance(tag_path[-1], str) else 'item'}", ""
    if kind == "literal_error":
        hint = did_you_mean(str(given), _QUOTED.findall(ctx["expected"]))
        return f"expected {ctx['expected']}", f", got {given!r}{hint}"
    return _expected(details["msg"]), f", got {given!r}" if isinstance(given, _SCALARS) else ""


def _expected(msg: str) -> str:
    """Pydantic's own sentence, reworded as what was expected."""
    msg = msg.removeprefix("Value error, ")
    return "expected " + msg.removeprefix("Input should be ") if msg.startswith("Input should be ") else msg


def _unknown(name: str, allowed: list[str], what: str) -> str:
    listed = f"; allowed: {', '.join(allowed)}" if allowed else ""
    return f"unknown {what} {name!r}{did_you_mean(name, allowed)}{listed}"


def did_you_mean(name: str, allowed: list[str]) -> str:
    """A hint naming the close matches of `name`, e.g. " (did you mean 'cosine'?)"; empty when none is close."""
    close = difflib.get_close_matches(name, allowed, n=3)
    return f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""


def _keys_at(tag_path: KeyPath) -> list[str]:
    """Keys the recipe section at `tag_path` accepts."""
    return sorted(field.alias or name for model in _models_at(tag_path) for name, field in model.model_fields.items())


def _kinds_at(tag_path: KeyPath) -> list[str]:
    """The `kind` values of the union at `tag_path`, in schema order."""
    return [model.model_fields["kind"].default for model in _models_at(tag_path) if "kind" in model.model_fields]


def _models_at(tag_path: KeyPath) -> list[type[BaseModel]]:
    """The recipe sections that may stand at `tag_path`, found by walking the schema's types."""
    annotation: Any = Recipe
    for segment in tag_path:
        annotation = _step(annotation, segment)
    return [member for member in _members(annotation) if _is_model(member)]


def _step(annotation: Any, segment: str | int) -> Any:
    """The type one key, index or union tag below `annotation`."""
    for member in _members(annotation):
        if _is_model(member):
            fields = {field.alias or name: field for name, field in member.model_fields.items()}
            if segment in fields:
                return fields[segment].annotation
            if "kind" in fields and fields["kind"].default == segment:
                return member
        elif get_origin(member) in (list, dict):
            return get_args(member)[-1]
    return None


def _members(annotation: Any) -> list[Any]:
    """The alternatives of a union (Annotated and Optional unwrapped), or the type itself."""
    if get_origin(annotation) is Annotated:
        return _members(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        return [member for arg in get_args(annotation) for member in _members(arg)]
    return [annotation]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)
