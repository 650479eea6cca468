"""Reads recipe files into a validated `Recipe`, keeping where every key was written.

The only module that imports yaml, and only its safe loader. Reading goes YAML
(with positions) -> `extends` chain merged -> `--set` overrides -> `model.from_run`'s
model (and rewrites) filled in -> pydantic.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from surgery.errors import Location, Problem, RecipeError
from surgery.recipe.from_run import resolve_from_run
from surgery.recipe.overrides import parse_override, set_value
from surgery.recipe.problems import validation_problems
from surgery.recipe.schema import Recipe
from surgery.recipe.tree import KeyPath, Locations, deep_merge, merged_locations

Located = tuple[Any, Locations]

MAX_DEPTH = 50
"""Deepest nesting of mappings and lists a recipe may use."""
_OPENING = (yaml.BlockMappingStartToken, yaml.BlockSequenceStartToken, yaml.FlowMappingStartToken, yaml.FlowSequenceStartToken)
_CLOSING = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


class _SafeLoader(yaml.SafeLoader):
    """SafeLoader that also reads YAML 1.2 floats without a dot (3e-4, 1e-6) as floats, not strings."""


_SafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"), list("-+.0123456789")
)


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """Reads, merges, overrides and validates a recipe; every problem found is raised at once.

    Raises:
        RecipeError: each problem with its file:line:column and what was expected.

    Example:
        >>> recipe = load_recipe("recipes/quickstart.yaml", ["stages.0.lr=3e-4"])  # doctest: +SKIP
    """
    data, locations = _resolve(Path(path), ())
    return _validated(data, locations, overrides)


def recipe_from_data(data: Mapping[str, Any], overrides: Sequence[str] = ()) -> Recipe:
    """A recipe written in code as plain data, then overridden and validated exactly like a file.

    Example:
        >>> recipe_from_data({"name": "r", "model": {"name": "deit_tiny_patch16_224"}, "rewrites": [{}]}).rewrites[0].substitute
        'bilstm'
    """
    return _validated(copy.deepcopy(dict(data)), {}, overrides)


def _validated(data: dict[str, Any], locations: Locations, overrides: Sequence[str]) -> Recipe:
    apply_overrides(data, locations, overrides)
    resolve_from_run(data, locations, lambda path: _resolve(path, ()))
    try:
        return Recipe.model_validate(data, context={"locations": locations})
    except ValidationError as error:
        raise RecipeError(validation_problems(error, data, locations)) from None


def apply_overrides(data: dict[str, Any], locations: Locations, overrides: Sequence[str]) -> None:
    """Applies `--set dotted.key=value` texts in order; each value is read as a YAML scalar or flow value.

    A value starting with `*` or `&` (a YAML alias or anchor, which one value cannot use) is a plain
    string, so that `--set rewrites.0.select.path=*` selects every site.
    """
    problems: list[Problem] = []
    for text in overrides:
        try:
            override = parse_override(text)
            literal = override.value_text.startswith(("*", "&"))
            value = override.value_text if literal else _parse_yaml(override.value_text, override.location.file)[0]
            set_value(data, locations, override, value)
        except RecipeError as error:
            problems += error.problems
    if problems:
        raise RecipeError(problems)


def _parse_yaml(text: str, file: str) -> Located:
    """YAML text -> (plain data, where each mapping key and list item starts)."""
    try:
        return _construct(text, file)
    except yaml.YAMLError as error:
        raise RecipeError([_yaml_problem(error, text, file)]) from None


def _construct(text: str, file: str) -> Located:
    _check_depth(text, file)
    loader = _SafeLoader(text)
    try:
        node = loader.get_single_node()
        locations: Locations = {}
        data = None if node is None else _build(loader, node, (), locations, file, node.start_mark)
        return data, locations
    finally:
        loader.dispose()


def _check_depth(text: str, file: str) -> None:
    """Refuse nesting deeper than `MAX_DEPTH` at the bracket or indent that exceeds it.

    PyYAML composes recursively: a few thousand nested brackets exhaust Python's stack
    before any error with a place could be raised. Its scanner is iterative, so it looks first.
    """
    depth = 0
    for token in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(token, _OPENING):
            depth += 1
            if depth > MAX_DEPTH:
                raise RecipeError([Problem(_location(token.start_mark, file), f"nesting deeper than {MAX_DEPTH} levels; a recipe needs a handful")])
        elif isinstance(token, _CLOSING):
            depth -= 1


def _yaml_problem(error: yaml.YAMLError, text: str, file: str) -> Problem:
    """Syntax and unsafe-tag errors at the mark PyYAML gives; a character YAML refuses at its position in `text`."""
    if isinstance(error, yaml.reader.ReaderError):
        return Problem(_offset_location(text, error.position, file), f"invalid YAML: control character U+{error.character:04X} is not allowed")
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    if mark is None:
        return Problem(None, f"invalid YAML in {file}: {' '.join(str(error).split())}")
    return Problem(_location(mark, file), f"invalid YAML: {error.problem}")


def _offset_location(text: str | bytes, offset: int, file: str) -> Location:
    """FILE:LINE:COL of the character (or byte) at `offset`."""
    newline = "\n" if isinstance(text, str) else b"\n"
    before = text[:offset]
    return Location(file, before.count(newline) + 1, offset - (before.rfind(newline) + 1) + 1)


def _build(loader: _SafeLoader, node: yaml.Node, path: KeyPath, locations: Locations, file: str, mark: Any) -> Any:
    """Constructs the value of `node`, recording `mark` (its key's, inside a mapping) as its place."""
    locations[path] = _location(mark, file)
    if isinstance(node, yaml.MappingNode):
        return _build_mapping(loader, node, path, locations, file)
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, (*path, i), locations, file, item.start_mark) for i, item in enumerate(node.value)]
    return loader.construct_object(node)


def _build_mapping(loader: _SafeLoader, node: yaml.MappingNode, path: KeyPath, locations: Locations, file: str) -> dict:
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        place = _location(key_node.start_mark, file)
        if not isinstance(key_node, yaml.ScalarNode):
            raise RecipeError([Problem(place, "expected a plain key, got a mapping or list as a key")])
        key = loader.construct_object(key_node)
        if key in result:
            raise RecipeError([Problem(place, f"duplicate key {key!r}; each key may appear once per mapping")])
        result[key] = _build(loader, value_node, (*path, key), locations, file, key_node.start_mark)
    return result


def _location(mark: Any, file: str) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


def _resolve(path: Path, chain: tuple[Path, ...]) -> Located:
    """The recipe at `path` with its `extends` chain merged in, base first, child winning."""
    data, locations = _read_mapping(path)
    if "extends" not in data:
        return data, locations
    base_path = _base_path(data.pop("extends"), path, locations)
    chain = (*chain, path.resolve())
    if base_path.resolve() in chain:
        cycle = " -> ".join(map(str, (*chain, base_path.resolve())))
        raise RecipeError([Problem(locations[("extends",)], f"extends cycle: {cycle}")])
    base, base_locations = _resolve(base_path, chain)
    merged = deep_merge(base, data)
    return merged, merged_locations(merged, base_locations, locations)


def _read_mapping(path: Path) -> Located:
    """Reads one file, which must hold a mapping at its top level."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise RecipeError([Problem(None, f"cannot read recipe {path}: {error.strerror or error}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RecipeError([Problem(_offset_location(raw, error.start, str(path)), f"not UTF-8: byte {raw[error.start]:#04x} cannot be decoded")]) from None
    data, locations = _parse_yaml(text, str(path))
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise RecipeError([Problem(Location(str(path), 1, 1), f"expected a mapping of recipe keys, got {got}")])
    return data, locations


def _base_path(ref: Any, path: Path, locations: Locations) -> Path:
    """The file `extends: ref` names, relative to the directory of the file that says it."""
    place = locations[("extends",)]
    if not isinstance(ref, str):
        raise RecipeError([Problem(place, f"extends: expected a path to a base recipe, got {ref!r}")])
    base = Path(os.path.normpath(path.parent / ref))
    if not base.is_file():
        raise RecipeError([Problem(place, f"extends: no recipe file at {base}")])
    return base


def dump_recipe(recipe: Recipe) -> str:
    """The fully resolved recipe as YAML (defaults filled in, `extends` and `--set` applied)."""
    data = recipe.model_dump(mode="json", by_alias=True, exclude={"extends"})
    if recipe.model.from_run is None:  # as written before transfers existed: --resume compares this text
        del data["model"]["from_run"], data["model"]["use"]
    if recipe.search is None:  # likewise, as written before searches existed
        del data["search"]
    return yaml.safe_dump(data, sort_keys=False)
