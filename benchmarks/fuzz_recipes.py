"""Recipe fuzzing: mutations of every shipped recipe through `surgery validate` and `surgery plan --device meta`.

Each case mutates one recipe in `recipes/` (a value of the wrong type, a deleted
or unknown key, truncation, control bytes, invalid UTF-8, tabs, huge, negative
and non-finite numbers, unicode keys, deep nesting, YAML tags, or `--set`
overrides) and runs both commands in this process. A case passes when each
command exits 0 or 2, never with a traceback, and every line of a refusal says
where: FILE:LINE or FILE:LINE:COL in the mutated file, or the `--set` text.

`plan` runs only where `validate` accepted; a plan whose model, rewrites and
hardware equal an earlier case's reuses that case's outcome (planning is
deterministic), which keeps 10 000 cases to minutes.

    python benchmarks/fuzz_recipes.py --cases 10000         # counts; each failing case on stderr
    python benchmarks/fuzz_recipes.py --cases 200 --json    # one JSON object
    python benchmarks/fuzz_recipes.py --keep /tmp/fuzz      # failing cases written there to rerun by hand
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from surgery.cli import app
from surgery.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
NOTICES = ("skipped: ", "note: ")
"""Lines a command prints on stderr that are no refusal."""


@dataclass
class Case:
    recipe: str
    mutation: str
    text: bytes
    overrides: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    index: int
    recipe: str
    mutation: str
    validate: int
    plan: int | None
    problem: str = ""
    """Empty when the case passed; else the traceback's last line or the unlocated refusal line."""


Tree = Any
Mutation = Callable[[random.Random, str, Tree], Case]


def fuzz(cases: int, seed: int, keep: Path | None = None, log: Callable[[Outcome], None] = lambda outcome: None) -> list[Outcome]:
    """Run `cases` mutations, seeded: the same arguments give the same cases; failing ones are copied to `keep`."""
    rng = random.Random(seed)
    sources = {path.name: path.read_text() for path in RECIPES}
    plans: dict[str, tuple[int, str]] = {}
    outcomes = []
    with tempfile.TemporaryDirectory() as folder:
        for index in range(cases):
            name = rng.choice(sorted(sources))
            mutation = rng.choice(MUTATIONS)
            case = mutation(rng, name, yaml.safe_load(sources[name]))
            for sibling, text in sources.items():  # a recipe `extends` the shipped file, never an earlier case's mutation
                (Path(folder) / sibling).write_text(text)
            outcome = run_case(index, case, Path(folder) / name, plans)
            if outcome.problem and keep is not None:
                keep.mkdir(parents=True, exist_ok=True)
                (keep / f"{index:05d}-{name}").write_bytes(case.text)
                (keep / f"{index:05d}-{name}.set").write_text("\n".join(case.overrides))
            log(outcome)
            outcomes.append(outcome)
    return outcomes


def run_case(index: int, case: Case, path: Path, plans: dict[str, tuple[int, str]]) -> Outcome:
    path.write_bytes(case.text)
    sets = [f"--set={text}" for text in case.overrides]
    validated, problem = _invoke(["validate", str(path), *sets], path)
    outcome = Outcome(index, case.recipe, case.mutation, validated, None, problem)
    if validated != 0 or problem:
        return outcome
    key = _plan_key(path, case.overrides)
    if key not in plans:
        plans[key] = _invoke(["plan", str(path), "--device", "meta", *sets], path)
    outcome.plan, outcome.problem = plans[key]
    return outcome


def _invoke(arguments: list[str], path: Path) -> tuple[int, str]:
    """(exit code, problem): a traceback, an exit code other than 0 and 2, or a refusal line without a place."""
    result = CliRunner().invoke(app, arguments)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return 1, f"{type(result.exception).__name__}: {' '.join(str(result.exception).split())[:200]}"
    if result.exit_code not in (0, 2):
        return result.exit_code, f"exit code {result.exit_code}"
    located = re.compile(rf"{re.escape(str(path))}:\d+(:\d+)?: |--set ")
    if result.exit_code == 2:
        for line in result.stderr.splitlines():
            if line.strip() and not line.startswith(NOTICES) and not located.match(line):
                return 2, f"unlocated: {line[:200]}"
    return result.exit_code, ""


def _plan_key(path: Path, overrides: list[str]) -> str:
    recipe = load_recipe(path, overrides)
    return json.dumps(recipe.model_dump(mode="json", include={"model", "rewrites", "hardware", "seed"}), sort_keys=True)


def _dump(data: Tree) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _places(tree: Tree, prefix: tuple = ()) -> list[tuple]:
    """Every key path in `tree`, mapping keys and list indices alike."""
    children = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    places = []
    for key, value in children:
        places.append((*prefix, key))
        places += _places(value, (*prefix, key))
    return places


def _parent(tree: Tree, place: tuple) -> Tree:
    for key in place[:-1]:
        tree = tree[key]
    return tree


def _numbers(tree: Tree) -> list[tuple]:
    numbers = [p for p in _places(tree) if isinstance(_parent(tree, p)[p[-1]], (int, float)) and not isinstance(_parent(tree, p)[p[-1]], bool)]
    return numbers or _places(tree)


def _set(rng: random.Random, name: str, tree: Tree, mutation: str, places: list[tuple], value: object) -> Case:
    place = rng.choice(places)
    _parent(tree, place)[place[-1]] = value
    return Case(name, mutation, _dump(tree).encode())


def wrong_type(rng: random.Random, name: str, tree: Tree) -> Case:
    value = rng.choice(["text", 3, 2.5, True, None, [1, 2], {"a": 1}, "", -7, "1e-3"])
    return _set(rng, name, tree, "wrong_type", _places(tree), value)


def huge_or_negative(rng: random.Random, name: str, tree: Tree) -> Case:
    value = rng.choice([10**30, -(10**30), -1, 0, 1e308, -1e-300, 2**63, -(2**31), 10**400])
    return _set(rng, name, tree, "huge_or_negative", _numbers(tree), value)


def non_finite(rng: random.Random, name: str, tree: Tree) -> Case:
    return _set(rng, name, tree, "non_finite", _numbers(tree), rng.choice([float("nan"), float("inf"), float("-inf")]))


def delete_key(rng: random.Random, name: str, tree: Tree) -> Case:
    place = rng.choice(_places(tree))
    del _parent(tree, place)[place[-1]]
    return Case(name, "delete_key", _dump(tree).encode())


def unknown_key(rng: random.Random, name: str, tree: Tree) -> Case:
    mappings = [()] + [p for p in _places(tree) if isinstance(_parent(tree, p)[p[-1]], dict)]
    place = rng.choice(mappings)
    target = _parent(tree, (*place, None)) if place else tree
    target[rng.choice(["lrr", "epoch", "Stages", "substitue", "ĉapitelo", "🙂", "x" * 300, "", "1"])] = rng.choice([1, "a", None])
    return Case(name, "unknown_key", _dump(tree).encode())


def unicode_key(rng: random.Random, name: str, tree: Tree) -> Case:
    keys = [p for p in _places(tree) if isinstance(p[-1], str)]
    place = rng.choice(keys)
    parent = _parent(tree, place)
    twisted = rng.choice([place[-1].upper(), place[-1] + "\u0301", place[-1].replace("a", "а"), "\uff4c\uff52", "\u200b" + place[-1]])
    parent[twisted] = parent.pop(place[-1])
    return Case(name, "unicode_key", _dump(tree).encode())


def deep_nesting(rng: random.Random, name: str, tree: Tree) -> Case:
    depth = rng.choice([30, 200, 1000, 5000])
    opening, closing = rng.choice([("[", "]"), ("{a: ", "}")])
    text = _set(rng, name, tree, "deep_nesting", _places(tree), "__DEEP__").text.decode()
    return Case(name, "deep_nesting", text.replace("__DEEP__", opening * depth + "1" + closing * depth, 1).encode())


def yaml_tag(rng: random.Random, name: str, tree: Tree) -> Case:
    tag = rng.choice(["!!python/object/apply:os.system ['true']", "!!binary aGk=", "!custom 1", "!!set {a}", "*undefined", "&anchor 3"])
    text = _set(rng, name, tree, "yaml_tag", _places(tree), "__TAG__").text.decode()
    return Case(name, "yaml_tag", text.replace("'__TAG__'", tag, 1).replace("__TAG__", tag, 1).encode())


def truncate(rng: random.Random, name: str, tree: Tree) -> Case:
    text = _dump(tree).encode() if rng.random() < 0.5 else (ROOT / "recipes" / name).read_bytes()
    return Case(name, "truncate", text[: rng.randrange(len(text))])


def _insert(rng: random.Random, name: str, mutation: str, inserted: bytes) -> Case:
    text = (ROOT / "recipes" / name).read_bytes()
    at = rng.randrange(len(text) + 1)
    return Case(name, mutation, text[:at] + inserted + text[at:])


def control_byte(rng: random.Random, name: str, tree: Tree) -> Case:
    byte = rng.choice([*range(0, 9), 11, 12, *range(14, 32), 127])
    return _insert(rng, name, "control_byte", bytes([byte]))


def invalid_utf8(rng: random.Random, name: str, tree: Tree) -> Case:
    return _insert(rng, name, "invalid_utf8", rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xfe\xff", b"\xe2\x82", b"\x80"]))


def tabs(rng: random.Random, name: str, tree: Tree) -> Case:
    lines = (ROOT / "recipes" / name).read_text().splitlines(keepends=True)
    indented = [i for i, line in enumerate(lines) if line.startswith(" ")] or [0]
    index = rng.choice(indented)
    lines[index] = "\t" + lines[index].lstrip(" ")
    return Case(name, "tabs", "".join(lines).encode())


def overrides(rng: random.Random, name: str, tree: Tree) -> Case:
    keys = [".".join(str(part) for part in place) for place in _places(tree)]
    keys += ["stages.99.lr", "rewrites.-1.substitute", "a..b", "", "model..name", "🙂", "rewrites.0.select.path"]
    values = ["", "*", "&a", "*.attn", "nan", ".inf", "-1", "1e999", "[", "{", "]", "null", "é", "x=y", "0x10", "'open", "~", "yes",
              "!!python/object/apply:os.system ['true']", "{a: [1, {b: 2}]}", "[" * 500, "\t", "\x00", "10000000000000000000000"]
    texts = [f"{rng.choice(keys)}={rng.choice(values)}" for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.2:
        texts.append(rng.choice(["no_equals_sign", "=value", "==", "stages"]))
    return Case(name, "overrides", (ROOT / "recipes" / name).read_bytes(), texts)


MUTATIONS: list[Mutation] = [
    wrong_type, huge_or_negative, non_finite, delete_key, unknown_key, unicode_key, deep_nesting, yaml_tag,
    truncate, control_byte, invalid_utf8, tabs, overrides,
]


def summary(outcomes: list[Outcome], wall: float) -> dict[str, Any]:
    failed = [o for o in outcomes if o.problem]
    return {
        "cases": len(outcomes),
        "validate": dict(Counter(str(o.validate) for o in outcomes)),
        "plan": dict(Counter(str(o.plan) for o in outcomes if o.plan is not None)),
        "tracebacks": sum(not o.problem.startswith(("unlocated", "exit code")) for o in failed),
        "unlocated": sum(o.problem.startswith("unlocated") for o in failed),
        "other_exit_codes": sum(o.problem.startswith("exit code") for o in failed),
        "by_mutation": dict(Counter(o.mutation for o in outcomes)),
        "wall_s": round(wall, 1),
        "failures": [asdict(o) for o in failed],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="Print one JSON object instead of a summary.")
    parser.add_argument("--keep", type=Path, help="Write each failing case here: INDEX-RECIPE.yaml and its --set texts in .set.")
    args = parser.parse_args()

    def log(outcome: Outcome) -> None:
        if outcome.problem:
            print(f"FAIL {outcome.index} {outcome.recipe} {outcome.mutation}: {outcome.problem}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    result = summary(fuzz(args.cases, args.seed, args.keep, log), time.perf_counter() - started)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"{result['cases']} cases in {result['wall_s']:.0f} s: {result['tracebacks']} tracebacks, {result['unlocated']} unlocated refusals, "
        f"{result['other_exit_codes']} other exit codes; validate exits {result['validate']}, plan exits {result['plan']}"
    )
    sys.exit(1 if result["failures"] else 0)


if __name__ == "__main__":
    main()
