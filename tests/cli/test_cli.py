"""Golden tests of the CLI contract: exit codes, one-line located errors, JSON shapes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.cli.cli_helpers import invoke
from tests.tiny import recipe_data, to_yaml, write_recipe

RECIPES = Path(__file__).parents[2] / "recipes"
DEIT = str(RECIPES / "deit_far.yaml")
LOCATED = re.compile(r"^(\S+:\d+:\d+|--set \S+): ")
MINIMAL = to_yaml(recipe_data())


def test_validate_accepts_the_paper_recipe():
    result = invoke("validate", DEIT)
    assert result.exit_code == 0, result.output
    assert "valid" in result.stdout


def test_validate_reports_unknown_key_with_location_and_suggestion(tmp_path):
    recipe = write_recipe(tmp_path, MINIMAL.replace("substitute: bilstm", "substitute: bilstm\n    parms: {}"))
    result = invoke("validate", recipe)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and LOCATED.match(lines[0]), lines
    assert lines[0].startswith(f"{recipe}:8:5:") and "params" in lines[0]


def test_validate_reports_wrong_type_with_location(tmp_path):
    recipe = write_recipe(tmp_path, MINIMAL.replace("name: tiny", "name: tiny\nseed: many"))
    result = invoke("validate", recipe)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{recipe}:2:1:") and "seed" in result.stderr


def test_validate_names_registered_substitutes(tmp_path):
    result = invoke("validate", write_recipe(tmp_path, MINIMAL.replace("substitute: bilstm", "substitute: bilstn")))
    assert result.exit_code == 2
    assert LOCATED.match(result.stderr) and "did you mean 'bilstm'" in result.stderr


def test_plan_json_contract_on_the_paper_recipe():
    result = invoke("plan", DEIT, "--device", "meta", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data["sites"]) == 12
    assert {"path", "class", "num_heads", "head_dim", "dim", "substitute"} <= set(data["sites"][0])
    assert data["sites"][0]["class"] == "Attention" and data["sites"][0]["num_heads"] == 3
    for model in ("teacher", "student"):
        assert isinstance(data[model]["params"], int) and isinstance(data[model]["macs"], int)
    assert abs(data["student"]["params"] / 7.7e6 - 1) < 0.02
    assert abs(data["student"]["macs"] / 1.45e9 - 1) < 0.03


def test_plan_set_override_changes_the_model():
    result = invoke("plan", DEIT, "--device", "meta", "--json", "--set", "model.name=deit_small_patch16_224")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sites"][0]["num_heads"] == 6


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("rewrites.0.params.heads=5", "heads=5 does not divide"),
        ("model.name=deit_tiny_patch16_22", "did you mean 'deit_tiny_patch16_224'"),
        ("rewrites.0.select.path=block.*.attn", "matches no attention site; sites are 0:blocks.0.attn"),
        ("rewrites.0.substitute=lstm", "unknown substitute 'lstm'"),
        ("rewrites.0.params.hidden=64", "hidden"),
        ("model.kwargs.bogus=1", "unexpected keyword argument 'bogus'"),
    ],
)
def test_plan_refuses_bad_input_in_one_located_line(override, expected):
    result = invoke("plan", DEIT, "--device", "meta", "--set", override)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and LOCATED.match(lines[0]), lines
    assert expected in lines[0]


def test_plan_table_names_the_unit():
    result = invoke("plan", DEIT, "--device", "meta")
    assert result.exit_code == 0, result.output
    assert "MACs = FLOPs/2" in result.stdout and "blocks.11.attn" in result.stdout


def test_inspect_lists_sites_as_json():
    result = invoke("inspect", "vit_tiny_patch16_224", "-k", "img_size=32", "-k", "patch_size=8", "-k", "depth=3", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [s["path"] for s in data["sites"]] == ["blocks.0.attn", "blocks.1.attn", "blocks.2.attn"]
    assert data["sites"][0]["seq_len"] == 17 and data["input_size"] == [3, 32, 32]


def test_inspect_unknown_model_suggests_names():
    result = invoke("inspect", "deit_tiny_patch16")
    assert result.exit_code == 2
    assert "deit_tiny_patch16_224" in result.stderr


def test_inspect_reports_how_each_site_is_adapted():
    result = invoke("inspect", "vit_tiny_patch16_224", "-k", "img_size=32", "-k", "patch_size=8", "-k", "depth=1", "--json")
    contract = json.loads(result.stdout)["sites"][0]["contract"]
    assert (contract["layout"], contract["grid"], contract["prefix"], contract["output"]) == ("tokens", [4, 4], 1, "same")


@pytest.mark.parametrize("args", [["--all-families", "vit_tiny_patch16_224"], ["--all-families", "-k", "depth=1"], []])
def test_inspect_needs_a_model_or_all_families_alone(args):
    result = invoke("inspect", *args)
    assert result.exit_code == 2
    assert "--all-families" in result.stderr


def test_unknown_token_order_is_refused_with_its_location(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nmodel: {name: vit_tiny_patch16_224}\nrewrites:\n  - token_order: spiral\n")
    result = invoke("validate", str(recipe))
    assert result.exit_code == 2
    assert "r.yaml:4" in result.stderr and "'raster', 'snake', 'column' or 'multiscan'" in result.stderr


def test_schema_matches_the_committed_file():
    result = invoke("schema")
    assert result.exit_code == 0
    assert result.stdout == (RECIPES / "recipe.schema.json").read_text()


@pytest.mark.parametrize("recipe", sorted(RECIPES.rglob("*.yaml")), ids=lambda p: str(p.relative_to(RECIPES)))
def test_every_shipped_recipe_validates_and_plans(recipe):
    if "source: transformers" in recipe.read_text():
        pytest.importorskip("transformers")  # the text extra
    assert invoke("validate", str(recipe)).exit_code == 0
    result = invoke("plan", str(recipe), "--device", "meta", "--json")
    if "\nsearch:" in recipe.read_text():  # a search plans its sites itself (surgery search)
        assert result.exit_code == 2 and "has a search section, which plan does not run" in result.output
        return
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sites"]


def test_a_keyword_timm_names_in_its_refusal_is_located_at_that_keyword(tmp_path):
    recipe = write_recipe(
        tmp_path,
        "name: tiny\nmodel:\n  name: vit_tiny_patch16_224\n  kwargs:\n    img_size: 32\n    bogus: 1\nrewrites:\n  - substitute: bilstm\n",
    )
    result = invoke("plan", str(recipe), "--device", "meta")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"{recipe}:6:5: ") and "unexpected keyword argument 'bogus'" in result.stderr, result.stderr
