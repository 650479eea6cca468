"""The recipe's `search` section: what it accepts, and every refusal at its line, through the loader and `surgery validate`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from surgery.errors import RecipeError
from surgery.recipe import Limit, Substitution, check_recipe, dump_recipe, load_recipe, recipe_from_data
from tests.cli.cli_helpers import invoke

HEAD = """\
name: s
model: {name: deit_tiny_patch16_224}
"""
SEARCH = HEAD + """\
search:
  select: {path: "blocks.*.attn"}
  candidates:
    - keep
    - {substitute: bilstm, params: {init: attention}}
    - {substitute: conv}
    - {substitute: bilstm, keep_ratios: [0.5, 1.0]}
  budget:
    energy: 0.8x
    params: 5.0e6
  predictor: {steps: 20}
"""


def write(folder: Path, text: str, name: str = "r.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(RecipeError) as caught:
        check_recipe(load_recipe(path))
    return [str(problem) for problem in caught.value.problems]


def search_with(folder: Path, candidates: str = "[keep, {substitute: conv}]", budget: str = "{energy: 0.8x}") -> Path:
    return write(folder, HEAD + f"search:\n  candidates: {candidates}\n  budget: {budget}\n")


def test_search_section_is_read_and_needs_no_rewrites(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path, SEARCH))
    check_recipe(recipe)
    search = recipe.search
    assert recipe.rewrites == [] and search.select.path == "blocks.*.attn"
    assert search.candidates[0] == "keep"
    assert search.candidates[1] == Substitution(substitute="bilstm", params={"init": "attention"})
    assert search.candidates[3].keep_ratios == [0.5, 1.0]
    assert search.budget.limits() == {"energy": Limit(value=0.8, relative=True), "params": Limit(value=5e6)}
    assert (search.predictor.steps, search.predictor.batch_size, search.predictor.lr, search.predictor.score) == (20, 64, 2e-3, "task")


def test_a_searched_recipe_dumps_and_reads_back_the_same(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path, SEARCH))
    text = dump_recipe(recipe)
    assert "energy: 0.8x" in text
    assert recipe_from_data(yaml.safe_load(text)).model_dump() == recipe.model_dump()


def test_a_recipe_without_search_dumps_without_it(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path, HEAD + "rewrites: [{}]\n"))
    assert "search" not in yaml.safe_load(dump_recipe(recipe))


@pytest.mark.parametrize(
    ("written", "value", "relative", "teacher", "allowed"),
    [("0.8x", 0.8, True, 10.0, 8.0), (" 1.5 x", 1.5, True, 2.0, 3.0), ("1e-3x", 1e-3, True, 1.0, 1e-3), (3, 3.0, False, 10.0, 3.0), (5.0e6, 5e6, False, 1.0, 5e6)],
)
def test_budget_values_parse(written: object, value: float, relative: bool, teacher: float, allowed: float) -> None:
    limit = Limit.model_validate(written)
    assert (limit.value, limit.relative, limit.resolve(teacher)) == (value, relative, pytest.approx(allowed))
    assert Limit.model_validate(limit.model_dump()) == limit  # dumped as written, read back alike


def test_budget_resolves_against_the_teacher(tmp_path: Path) -> None:
    budget = load_recipe(write(tmp_path, SEARCH)).search.budget
    assert budget.resolve({"energy": 2.0, "params": 1e9, "macs": 7.0}) == {"energy": pytest.approx(1.6), "params": 5e6}


@pytest.mark.parametrize("written", ["abc", "-1x", "0x", "x", "0.8y", 0, -2, float("inf"), "nanx", True, None, [1]])
def test_bad_budget_values_are_refused(written: object) -> None:
    with pytest.raises(ValueError, match="positive number, or a positive ratio"):
        Limit.model_validate(written)


@pytest.mark.parametrize(
    ("candidates", "budget", "expected"),
    [
        ("[keep, bilstm]", "{energy: 1}", "r.yaml:4:22: search.candidates.1: expected keep or a mapping such as {substitute: bilstm}, got 'bilstm'"),
        ("[keep, 3]", "{energy: 1}", "r.yaml:4:22: search.candidates.1: expected keep or a mapping such as {substitute: conv}, got 3"),
        ("[{substitute: conv, foo: 1}]", "{energy: 1}", "r.yaml:4:35: search.candidates.0.foo: unknown key 'foo'; allowed: keep_ratios, params, substitute"),
        ("[{params: {}}]", "{energy: 1}", "r.yaml:4:16: search.candidates.0.substitute: missing required key"),
        ("[{substitute: bilstm, keep_ratios: [0.5, 0]}]", "{energy: 1}", "r.yaml:4:56: search.candidates.0.keep_ratios.1: expected greater than 0, got 0"),
        ("[{substitute: bilstm, keep_ratios: [1.5]}]", "{energy: 1}", "r.yaml:4:51: search.candidates.0.keep_ratios.0: expected less than or equal to 1, got 1.5"),
        ("[{substitute: bilstm, keep_ratios: [0.5, 0.5]}]", "{energy: 1}", "r.yaml:4:37: search.candidates.0.keep_ratios: each keep ratio once, got [0.5, 0.5]"),
        ("[{substitute: bilstm, keep_ratios: []}]", "{energy: 1}", "r.yaml:4:37: search.candidates.0.keep_ratios: List should have at least 1 item"),
        ("[]", "{energy: 1}", "r.yaml:4:3: search.candidates: List should have at least 1 item after validation, not 0"),
        ("[keep, keep]", "{energy: 1}", "r.yaml:4:3: search.candidates: candidate 1 repeats candidate 0; give each once"),
        ("[keep, {substitute: conv}, {substitute: conv, params: {}}]", "{energy: 1}", "r.yaml:4:3: search.candidates: candidate 2 repeats candidate 1"),
        ("[keep]", "{}", "r.yaml:5:3: search.budget: give at least one limit: energy, reram_latency, cpu_latency, params, macs"),
        ("[keep]", "{energy: abc}", "r.yaml:5:12: search.budget.energy: expected a positive number, or a positive ratio of the teacher's cost written like '0.8x', got 'abc'"),
        ("[keep]", "{params: -1x}", "r.yaml:5:12: search.budget.params: expected a positive number, or a positive ratio"),
        ("[keep]", "{macs: 0x}", "r.yaml:5:12: search.budget.macs: expected a positive number, or a positive ratio"),
        ("[keep]", "{flops: 2}", "r.yaml:5:12: search.budget.flops: unknown key 'flops'; allowed: cpu_latency, energy, macs, params, reram_latency"),
    ],
)
def test_schema_refusals_are_located(tmp_path: Path, candidates: str, budget: str, expected: str) -> None:
    [problem] = problems_of(search_with(tmp_path, candidates, budget))
    assert problem.startswith(str(tmp_path / expected)), problem


def test_missing_budget_and_candidates_are_located(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, HEAD + "search: {select: {path: '*'}}\n"))
    assert problems == [f"{tmp_path / 'r.yaml'}:3:1: search.{key}: missing required key" for key in ("candidates", "budget")]


@pytest.mark.parametrize(
    ("candidates", "expected"),
    [
        ("[{substitute: bilsm}]", "r.yaml:4:17: search.candidates.0.substitute: unknown substitute 'bilsm'; did you mean 'bilstm'"),
        ("[{substitute: conv, params: {kernal_size: 3}}]", "r.yaml:4:44: search.candidates.0.params.kernal_size: conv takes no option 'kernal_size' (did you mean 'kernel_size'?)"),
        ("[{substitute: conv, keep_ratios: [0.5]}]", "r.yaml:4:35: search.candidates.0.keep_ratios: conv has no hidden units to prune; drop keep_ratios"),
    ],
)
def test_registry_refusals_are_located(tmp_path: Path, candidates: str, expected: str) -> None:
    [problem] = problems_of(search_with(tmp_path, candidates))
    assert problem.startswith(str(tmp_path / expected)), problem


def test_a_search_and_rewrites_together_are_refused(tmp_path: Path) -> None:
    [problem] = problems_of(write(tmp_path, SEARCH + "rewrites: [{}]\n"))
    assert problem.startswith(f"{tmp_path / 'r.yaml'}:14:1: rewrites: a search chooses the rewrites itself; drop rewrites")


def test_a_search_may_drop_a_base_recipes_rewrites(tmp_path: Path) -> None:
    write(tmp_path, HEAD + "rewrites: [{}]\n", "base.yaml")
    child = write(tmp_path, "extends: base.yaml\nrewrites: []\nsearch: {candidates: [keep, {substitute: conv}], budget: {macs: 0.5x}}\n")
    recipe = load_recipe(child)
    assert recipe.rewrites == [] and recipe.search.budget.macs == Limit(value=0.5, relative=True)


def test_without_search_a_recipe_still_needs_a_rewrite(tmp_path: Path) -> None:
    [problem] = problems_of(write(tmp_path, HEAD + "rewrites: []\n"))
    assert "rewrites: give at least one rewrite, or a search" in problem


def test_validate_accepts_a_search_and_refuses_a_typo_with_exit_2(tmp_path: Path) -> None:
    assert invoke("validate", write(tmp_path, SEARCH)).exit_code == 0
    result = invoke("validate", search_with(tmp_path, "[keep, {substitute: convv}]"))
    assert result.exit_code == 2
    assert f"{tmp_path / 'r.yaml'}:4:23: search.candidates.1.substitute: unknown substitute 'convv'" in result.output
