"""A chosen mix written as a plain recipe: self-contained, one rewrite per replaced site, valid, and read back the same."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from surgery.errors import RecipeError, SurgeryError
from surgery.recipe import PruneStage, Recipe, Substitution, check_recipe, load_recipe
from surgery.search import mix_recipe, write_mix_recipe
from tests.cli.cli_helpers import invoke

BASE = """\
name: base
seed: 3
model: {name: deit_tiny_patch16_224}
rewrites: [{}]
stages:
  - {kind: distill, epochs: 1, lr: 1.0e-3}
  - {kind: finetune, epochs: 2, lr: 1.0e-4}
hardware: {policy: digital}
"""
SEARCH = """\
extends: base.yaml
name: tiny
rewrites: []
search:
  select: {path: "blocks.*.attn"}
  candidates: [keep, {substitute: conv}, {substitute: bilstm, params: {init: attention}}]
  budget: {energy: 0.8x}
"""
MIX = {
    "blocks.0.attn": "keep",
    "blocks.1.attn": Substitution(substitute="conv"),
    "blocks.2.attn": Substitution(substitute="bilstm", params={"init": "attention"}),
}


@pytest.fixture
def searched(tmp_path: Path) -> Recipe:
    (tmp_path / "base.yaml").write_text(BASE, encoding="utf-8")
    (tmp_path / "search.yaml").write_text(textwrap.dedent(SEARCH), encoding="utf-8")
    return load_recipe(tmp_path / "search.yaml")


def test_the_mix_becomes_one_rewrite_per_replaced_site(searched: Recipe) -> None:
    written = mix_recipe(searched, MIX)
    assert written.search is None and written.name == "tiny_mix"
    assert [(r.select.path, r.substitute, r.params) for r in written.rewrites] == [
        ("blocks.1.attn", "conv", {}),
        ("blocks.2.attn", "bilstm", {"init": "attention"}),
    ]
    assert (written.seed, written.stages, written.hardware) == (searched.seed, searched.stages, searched.hardware)


def test_the_written_file_is_self_contained_and_reads_back_the_same(searched: Recipe, tmp_path: Path) -> None:
    path = write_mix_recipe(searched, MIX, tmp_path / "out", name="tiny_08x")
    assert path == tmp_path / "out" / "tiny_08x.yaml" and sorted(p.name for p in path.parent.iterdir()) == ["tiny_08x.yaml"]
    data = yaml.safe_load(path.read_text())
    assert "extends" not in data and "search" not in data and data["name"] == "tiny_08x"
    loaded = load_recipe(path)
    check_recipe(loaded)
    assert loaded.model_dump() == mix_recipe(searched, MIX, "tiny_08x").model_dump()
    assert invoke("validate", path).exit_code == 0


def test_stages_a_mix_cannot_run_are_left_out(searched: Recipe) -> None:
    pruning = searched.model_copy(update={"stages": [*searched.stages, PruneStage(epochs=1, lr=1e-3, hoyer_weight=1.0, threshold=0.5)]})
    assert [s.kind for s in mix_recipe(pruning, MIX).stages] == ["distill", "finetune", "prune"]  # bilstm prunes
    convolving = {"blocks.0.attn": Substitution(substitute="conv")}
    assert [s.kind for s in mix_recipe(pruning, convolving).stages] == ["distill", "finetune"]
    dropping = {"blocks.0.attn": Substitution(substitute="identity")}
    assert [s.kind for s in mix_recipe(pruning, dropping, trainable=False).stages] == ["finetune"]


def test_a_mix_that_keeps_every_site_is_refused(searched: Recipe) -> None:
    with pytest.raises(SurgeryError, match="every site of the mix keeps its attention"):
        mix_recipe(searched, {"blocks.0.attn": "keep", "blocks.1.attn": "keep"})


def test_keep_ratios_must_be_resolved_before_writing(searched: Recipe) -> None:
    with pytest.raises(SurgeryError, match=r"site blocks.1.attn: bilstm with keep ratios \[0.5\] is a set of options"):
        mix_recipe(searched, {"blocks.1.attn": Substitution(substitute="bilstm", keep_ratios=[0.5])})


def test_a_name_that_is_no_folder_name_is_refused(searched: Recipe) -> None:
    with pytest.raises(RecipeError, match="name"):
        mix_recipe(searched, MIX, name="a/b")
