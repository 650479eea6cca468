"""Selecting sites by measured attention sparsity: the ranking, the run that measures it, and its replay."""

from __future__ import annotations

import json

import pytest

from surgery.detect.sites import Site
from surgery.errors import SurgeryError
from surgery.recipe import Selector, SparsityCriterion, load_recipe, recipe_from_data
from surgery.recipe.schema import Rewrite
from surgery.rewrite.adapters import SiteAdapter
from surgery.rewrite.select import select
from surgery.rewrite.student import plan_and_build
from surgery.runs import apply_recipe, load_run
from surgery.runs.evaluate import evaluate_run
from tests.tiny import recipe_data


def site(index: int) -> Site:
    return Site(index, f"blocks.{index}.attn", "Attention", "", "tokens", 8, 2, 4, 5, ("matmul",))


SPARSITY = {f"blocks.{i}.attn": {"entropy": e, "top_mass": 1 - e, "hoyer": 1 - e} for i, e in enumerate([0.9, 0.2, 0.6, 0.4])}


@pytest.mark.parametrize(
    ("metric", "keep_dense", "chosen"),
    [("entropy", 2, [1, 3]), ("entropy", 0.25, [1, 2, 3]), ("hoyer", 1, [1, 2, 3]), ("top_mass", 0, [0, 1, 2, 3]), ("entropy", 4, [])],
)
def test_the_sparsest_sites_are_chosen_and_the_densest_kept(metric, keep_dense, chosen):
    rewrite = Rewrite(select=Selector(sparsity=SparsityCriterion(metric=metric, keep_dense=keep_dense)))
    sites = [site(i) for i in range(4)]
    if not chosen:
        with pytest.raises(SurgeryError, match="selector matches no attention site"):
            select(sites, [rewrite], SPARSITY)
        return
    assert [s.index for s, _ in select(sites, [rewrite], SPARSITY)] == chosen


def test_a_fraction_of_one_or_more_is_refused():
    with pytest.raises(ValueError, match="fraction must be below 1"):
        SparsityCriterion(keep_dense=1.5)


def test_planning_without_measurements_says_where_and_why(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: s\nmodel: {name: vit_tiny_patch16_224, kwargs: {img_size: 16, patch_size: 4, depth: 2}}\n"
        "rewrites:\n  - select:\n      sparsity: {keep_dense: 1}\n"
    )
    with pytest.raises(SurgeryError, match=r"r\.yaml:5:\d+: sites are chosen by attention sparsity .*`surgery apply` measures it"):
        plan_and_build(load_recipe(recipe), "cpu")


@pytest.mark.slow
def test_a_run_measures_sparsity_selects_by_it_and_replays_the_same_student(tmp_path):
    recipe = recipe_from_data(_tiny_with_sparsity(), [])
    run = apply_recipe(recipe, tmp_path / "run")
    record = json.loads(run.record.read_text())
    measured = record["sparsity"]
    assert set(measured) == {"blocks.0.attn", "blocks.1.attn"}
    sparsest = min(measured, key=lambda path: measured[path]["entropy"])
    assert [s["path"] for s in record["sites"]] == [sparsest]
    replayed = load_run(run.root)
    densest = max(measured, key=lambda path: measured[path]["entropy"])
    assert isinstance(replayed.get_submodule(sparsest), SiteAdapter)
    assert not isinstance(replayed.get_submodule(densest), SiteAdapter)  # still the teacher's attention
    report = json.loads(run.report_json.read_text())
    assert evaluate_run(run)["student"]["top1"] == report["student"]["top1"]  # the replay is the trained student


def _tiny_with_sparsity() -> dict:
    data = recipe_data(trained=True)
    data["rewrites"][0]["select"] = {"path": "blocks.*.attn", "sparsity": {"metric": "entropy", "keep_dense": 1}}
    data["stages"] = [s for s in data["stages"] if s["kind"] in ("fit", "distill")] + [{"kind": "evaluate"}]
    return data
