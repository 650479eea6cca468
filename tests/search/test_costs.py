"""A mix's cost is the base plus its sites: what the table predicts is what pricing the built mix gives."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodel import estimate
from surgery.measure.costing import workload_of
from surgery.measure.counting import count
from surgery.models import recipe_model
from surgery.recipe import Substitution, recipe_from_data
from surgery.recipe.hardware import resolve_hardware
from surgery.rewrite.plan import plan
from surgery.rewrite.student import build_student
from surgery.search import mix_recipe
from surgery.search.costs import cost_table
from tests.tiny import recipe_data

OPTIONS = {"keep": "keep", "bilstm": Substitution(substitute="bilstm"), "conv": Substitution(substitute="conv"), "identity": Substitution(substitute="identity")}
SITES = ["blocks.0.attn", "blocks.1.attn"]


@pytest.fixture(scope="module")
def priced():
    recipe = recipe_from_data(recipe_data())
    teacher = recipe_model(recipe).eval()
    models = {"keep": teacher}
    for label, candidate in OPTIONS.items():
        if label != "keep":
            models[label] = build_student(teacher, plan(mix_recipe(recipe, dict.fromkeys(SITES, candidate)), teacher))
    size = (3, 32, 32)
    table = cost_table(recipe, models, SITES, SITES, size, ["energy", "reram_latency", "params", "macs"])
    return recipe, teacher, table, size


def _built_mix_cost(recipe, teacher, mix: dict[str, str], size) -> dict[str, float]:
    replaced = {path: OPTIONS[label] for path, label in mix.items()}
    model = build_student(teacher, plan(mix_recipe(recipe, replaced), teacher)) if any(c != "keep" for c in replaced.values()) else teacher
    counts = count(model, size)
    rows = estimate(workload_of(model, SITES, size), resolve_hardware(recipe)[0], policy=recipe.hardware.policy)
    return {"params": counts.params, "macs": counts.macs, "energy": rows.total.energy_j, "reram_latency": rows.total.latency_s}


@settings(max_examples=8, deadline=None)
@given(st.lists(st.sampled_from(sorted(OPTIONS)), min_size=2, max_size=2))
def test_a_mix_costs_what_its_sites_add_up_to(priced, labels: list[str]) -> None:
    recipe, teacher, table, size = priced
    mix = dict(zip(SITES, labels))
    predicted, built = table.mix_cost(mix), _built_mix_cost(recipe, teacher, mix, size)
    for metric in ("params", "macs", "energy"):
        assert predicted[metric] == pytest.approx(built[metric], rel=1e-9), metric
    assert predicted["reram_latency"] == pytest.approx(built["reram_latency"], rel=1e-6)  # blocks run one after another


def test_what_a_site_runs_is_what_it_costs(priced) -> None:
    _, _, table, _ = priced
    assert all(table.sites[path]["identity"]["energy"] == 0 for path in SITES)  # dropping attention runs nothing
    assert all(table.sites[path]["conv"]["macs"] < table.sites[path]["bilstm"]["macs"] for path in SITES)
    dim, tokens = 32, 17
    assert all(table.sites[path]["keep"]["params"] == 4 * dim * dim + 4 * dim for path in SITES)  # qkv and proj, with biases
    projections, products = 4 * tokens * dim * dim, 2 * tokens * tokens * dim  # qkv and proj; q·kᵀ and attention·v
    assert all(table.sites[path]["keep"]["macs"] == projections + products for path in SITES)


def test_every_site_module_of_every_option_is_timed_alone_beside_the_whole_teacher(priced) -> None:
    from surgery.deploy.bench import BenchSettings
    from surgery.search.cpu_latency import site_latencies

    recipe, teacher, _, size = priced
    models = {"keep": teacher, "identity": build_student(teacher, plan(mix_recipe(recipe, dict.fromkeys(SITES, OPTIONS["identity"])), teacher))}
    per_site, whole = site_latencies(models, SITES, size, BenchSettings(runs=3, warmup=1, pin=False))
    assert set(per_site) == {"keep", "identity"} and all(set(by_site) == set(SITES) for by_site in per_site.values())
    assert whole > 0 and all(seconds > 0 for by_site in per_site.values() for seconds in by_site.values())  # identity: a graph of one constant
