"""`surgery search` end to end on the tiny digits recipe: the front, the written mix, the cache, and every refusal."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from surgery.errors import SurgeryError
from surgery.recipe import load_recipe
from surgery.runs.preflight import preflight
from tests.cli.cli_helpers import invoke
from tests.tiny import recipe_data, write_recipe

SITES = ["blocks.0.attn", "blocks.1.attn"]
CANDIDATES = [{"substitute": "bilstm", "params": {"init": "attention"}}, {"substitute": "bilstm", "keep_ratios": [0.5]}, {"substitute": "conv"}, {"substitute": "identity"}]


def searched_recipe(folder: Path, candidates: list = CANDIDATES, budget: dict | None = None) -> Path:
    data = recipe_data(trained=True)
    data["rewrites"] = []
    data["stages"] = [data["stages"][0], {"kind": "distill", "epochs": 1, "lr": 3.0e-3, "warmup_epochs": 0, "batch_size": 128}, {"kind": "evaluate"}]
    data["search"] = {"select": {"path": "blocks.*.attn"}, "candidates": candidates, "budget": budget or {"energy": "1.0x"},
                      "predictor": {"steps": 3, "batch_size": 32}}
    return write_recipe(folder, data)


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> tuple[Path, Path, dict]:
    folder = tmp_path_factory.mktemp("search")
    recipe = searched_recipe(folder)
    result = invoke("search", recipe, "--out", folder / "out", "--json")
    assert result.exit_code == 0, result.output
    return recipe, folder / "out", json.loads(result.stdout)


def test_the_front_is_cheapest_first_and_no_mix_on_it_is_beaten(searched) -> None:
    _, _, report = searched
    front = report["front"]
    energies, losses = [mix["cost"]["energy"] for mix in front], [mix["predicted"] for mix in front]
    assert energies == sorted(energies) and losses == sorted(losses, reverse=True)
    assert all(set(mix["sites"]) == set(SITES) and set(mix["sites"].values()) <= set(report["options"]) for mix in front)
    all_mixes = _every_mix(report)
    for mix in front:  # exact: no mix of all 4^2 is cheaper and better
        assert not any(m["cost"]["energy"] < mix["cost"]["energy"] and m["predicted"] < mix["predicted"] for m in all_mixes)


def _every_mix(report: dict) -> list[dict]:
    sites = report["sites"]
    labels = list(report["options"])
    mixes = []
    for first in labels:
        for second in labels:
            chosen = {SITES[0]: first, SITES[1]: second}
            cost = report["base"]["energy"] + sum(sites[p]["options"][label]["cost"]["energy"] for p, label in chosen.items())
            mixes.append({"sites": chosen, "predicted": sum(sites[p]["options"][label]["predicted"] for p, label in chosen.items()), "cost": {"energy": cost}})
    return mixes


def test_the_chosen_mix_is_the_best_in_the_budget_and_written_as_a_valid_recipe(searched) -> None:
    _, out, report = searched
    fitting = [mix for mix in _every_mix(report) if mix["cost"]["energy"] <= report["budget"]["energy"] * (1 + 1e-9)]
    assert report["chosen"]["predicted"] == pytest.approx(min(mix["predicted"] for mix in fitting))
    written = Path(report["chosen"]["recipe"])
    assert written == out / "tiny_mix.yaml"
    assert invoke("validate", written).exit_code == 0
    recipe = load_recipe(written)
    assert recipe.search is None
    assert {r.select.path: r.substitute for r in recipe.rewrites} == {p: report["options"][label]["substitute"] for p, label in report["chosen"]["sites"].items()}
    assert (out / "front.png").stat().st_size > 0 and json.loads((out / "search.json").read_text())["chosen"] == report["chosen"]


def test_a_keep_ratio_is_written_as_that_share_of_the_hidden_units(searched, tmp_path) -> None:
    from surgery.search.driver import run_search

    recipe, out, _ = searched
    result = run_search(load_recipe(recipe), out, name="halved")  # from the cache
    written = load_recipe(result.write_mix(result.uniform["bilstm@0.5"], tmp_path, "with_half"))
    assert [r.params for r in written.rewrites] == [{"hidden_size": 4}] * 2  # heads of 8 units, half kept
    assert written.rewrites[0].select.path == SITES[0]


def test_the_report_names_its_score_and_the_plot_has_an_axis_for_each(searched) -> None:
    from surgery.search.plot import SCORE_AXIS
    from surgery.search.predictor import SCORES

    _, out, report = searched
    assert report["score"] == "task" and set(SCORE_AXIS) == set(SCORES)
    again = invoke("search", searched[0], "--out", out, "--name", "by_kl", "--json", "--set", "search.predictor.score=output_kl")
    assert json.loads(again.stdout)["score"] == "output_kl"


def test_a_second_budget_trains_and_prices_nothing_again(searched) -> None:
    recipe, out, first = searched
    result = invoke("search", recipe, "--out", out, "--name", "cheaper", "--json", "--set", "search.budget.energy=0.7x")
    assert result.exit_code == 0, result.output
    again = json.loads(result.stdout)
    assert again["timing"]["teacher"]["cached"] and again["timing"]["costs"]["cached"] and again["timing"]["predictor"]["cached"]
    assert again["sites"] == first["sites"] and again["front"] == first["front"]
    assert again["chosen"]["cost"]["energy"] <= 0.7 * again["teacher"]["cost"]["energy"] * (1 + 1e-9)


def test_the_front_may_be_drawn_against_a_cost_that_is_not_budgeted(searched) -> None:
    recipe, out, first = searched
    result = invoke("search", recipe, "--out", out, "--name", "by_macs", "--json", "--set", "search.axis=macs")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    macs = [mix["cost"]["macs"] for mix in report["front"]]
    assert report["axis"] == "macs" and macs == sorted(macs) and report["budget"] == first["budget"]
    assert report["chosen"]["predicted"] == pytest.approx(first["chosen"]["predicted"])  # the same best mix within the budget


def test_an_existing_mix_recipe_is_not_replaced_without_force(searched) -> None:
    recipe, out, _ = searched
    result = invoke("search", recipe, "--out", out)
    assert result.exit_code == 2 and "tiny_mix.yaml exists: pass --force" in result.output


def test_budgets_out_of_reach_or_met_by_the_teacher_are_refused(searched, tmp_path) -> None:
    recipe, out, _ = searched
    fresh = tmp_path / "fresh"
    result = invoke("search", recipe, "--out", fresh, "--set", "search.budget.energy=1e-12")
    assert result.exit_code == 2 and re.search(r"tiny.yaml:\d+:\d+: search.budget: no mix fits the budget: energy <= 1e-12 is tightest", result.output)
    assert not list((fresh / "cache").glob("option-*")) + list((fresh / "cache").glob("reference-*")), "refused from the costs, before the predictor trains"
    keeping = searched_recipe(tmp_path, ["keep", {"substitute": "conv"}], {"params": "2.0x"})
    result = invoke("search", keeping, "--out", out, "--name", "y", "--set", "search.predictor.score=output_kl")  # no option beats keep
    assert result.exit_code == 2 and "lets every site keep its attention" in result.output


def test_params_a_substitute_rejects_at_a_site_are_refused_at_the_candidates_line(tmp_path) -> None:
    recipe = searched_recipe(tmp_path, ["keep", {"substitute": "conv", "params": {"kernel_size": 4}}])
    result = invoke("search", recipe, "--out", tmp_path / "out")
    assert result.exit_code == 2 and re.search(r"tiny.yaml:\d+:\d+: conv\(kernel_size=4\) at site blocks.0.attn: kernel_size must be a positive odd", result.output)
    assert not list((tmp_path / "out" / "cache").glob("costs-*")), "refused before anything is priced"


def test_a_recipe_starting_from_a_finished_run_is_refused_at_its_line(searched, finished_run, tmp_path) -> None:
    recipe, _, _ = searched
    data = load_recipe(recipe).model_dump(mode="json", by_alias=True, exclude={"extends"}, exclude_none=True)
    data["model"] = {"from_run": str(finished_run.run.root), "use": "teacher"}
    transfer = write_recipe(tmp_path, data)
    result = invoke("search", transfer, "--out", tmp_path / "out")
    assert result.exit_code == 2 and re.search(r"tiny.yaml:\d+:\d+: a search starts from a teacher with attention", result.output), result.output
    assert not (tmp_path / "out").exists(), "refused before any work"


def test_apply_refuses_a_recipe_that_searches(searched) -> None:
    recipe, _, _ = searched
    with pytest.raises(SurgeryError, match=r"tiny.yaml:\d+:\d+: recipe 'tiny' has a search section, which apply does not run"):
        preflight(load_recipe(recipe), None)


def test_teacher_forcing_keeps_each_site_apart() -> None:
    """A site's predicted loss is the same whether the other site is replaced too or stays attention."""
    import torch

    from surgery.data import build_loaders
    from surgery.models import recipe_model
    from surgery.recipe import PredictorSpec, Substitution, recipe_from_data
    from surgery.rewrite.plan import plan
    from surgery.rewrite.student import build_student
    from surgery.search import mix_recipe
    from surgery.search.predictor import Predictor
    from surgery.train.objectives import TaskLoss

    recipe = recipe_from_data(recipe_data(trained=True))
    torch.manual_seed(0)
    teacher = recipe_model(recipe).eval().requires_grad_(False)
    conv = Substitution(substitute="conv")
    both = build_student(teacher, plan(mix_recipe(recipe, dict.fromkeys(SITES, conv)), teacher))
    alone = build_student(teacher, plan(mix_recipe(recipe, {SITES[0]: "keep", SITES[1]: conv}), teacher))
    loaders = build_loaders(recipe.data, (1, 8, 8), 32, seed=0)
    spec = PredictorSpec(steps=4, finetune_steps=2, batch_size=32)
    task = TaskLoss(uses_teacher=False)
    together = Predictor(teacher, {p: p.rpartition(".")[0] for p in SITES}, loaders.train, loaders.val, spec, 0, task).score(both)
    apart = Predictor(teacher, {SITES[1]: "blocks.1"}, loaders.train, loaders.val, spec, 0, task).score(alone)
    for score in ("block_error", "output_kl"):
        assert getattr(together, score)[SITES[1]] == pytest.approx(getattr(apart, score)[SITES[1]], rel=1e-5)
        assert getattr(together, score)[SITES[0]] > 0


def test_the_task_score_shares_one_gain_per_option_out_by_how_much_each_site_weighs(searched) -> None:
    _, _, report = searched
    scores = {path: {label: entry["scores"] for label, entry in site["options"].items()} for path, site in report["sites"].items()}
    assert all(entry["predicted"] == entry["scores"]["task"] for site in report["sites"].values() for entry in site["options"].values())
    weighs = {path: sum(by_option[label]["output_kl"] for label in by_option) for path, by_option in scores.items()}
    for label in report["options"]:
        per_weight = [scores[path][label]["task"] / (weighs[path] / sum(weighs.values())) for path in SITES]
        assert per_weight == pytest.approx([per_weight[0]] * len(SITES))  # the option's gain, whichever site
        uniform = report["uniform"][label]["predicted"]
        assert uniform == pytest.approx(per_weight[0])  # every site taking it: the whole gain


def test_the_table_writes_options_as_letters_with_a_legend_where_their_names_do_not_fit(searched) -> None:
    from rich.console import Console

    from surgery.cli.render import search_table

    _, _, report = searched

    def shown(width: int) -> str:
        console = Console(width=width, record=True)
        console.print(search_table(report, width))
        return console.export_text()

    wide, narrow = shown(300), shown(80)
    assert "bilstm(init=attention)" in wide and "a = " not in wide
    assert all(f"\n{code} = {label}" in narrow for code, label in zip("abcd", ["bilstm(init=attention)", "bilstm@0.5", "conv", "identity"]))
    assert "…" not in narrow and "all a" in narrow, narrow


def test_a_new_candidate_trains_only_itself(searched, tmp_path) -> None:
    recipe, out, report = searched
    extra = tmp_path / "extra"
    shutil.copytree(out / "cache", extra / "cache")
    grown = searched_recipe(tmp_path, [*CANDIDATES, {"substitute": "linear_attention"}])
    before = {path.name for path in (extra / "cache").iterdir()}
    result = invoke("search", grown, "--out", extra, "--json")
    assert result.exit_code == 0, result.output
    trained = [name for name in {path.name for path in (extra / "cache").iterdir()} - before if not name.startswith("costs-")]
    assert len(trained) == 1 and trained[0].startswith("option-"), trained  # no reference, no other option again
    grown_report = json.loads(result.stdout)
    assert json.loads((extra / "cache" / trained[0]).read_text())["output_kl"] == {
        path: site["options"]["linear_attention"]["scores"]["output_kl"] for path, site in grown_report["sites"].items()
    }
    for path, site in report["sites"].items():  # the options searched before score as they did
        for label, entry in site["options"].items():
            assert grown_report["sites"][path]["options"][label]["scores"]["block_error"] == entry["scores"]["block_error"]
            assert grown_report["sites"][path]["options"][label]["scores"]["output_kl"] == entry["scores"]["output_kl"]


def test_the_output_score_is_the_divergence_of_the_model_with_that_site_alone_swapped() -> None:
    import copy

    import torch
    import torch.nn.functional as F

    from surgery.models import recipe_model
    from surgery.recipe import recipe_from_data
    from surgery.rewrite.adapters import SiteAdapter
    from surgery.search.predictor import swap_divergence

    recipe = recipe_from_data(recipe_data(trained=True))
    torch.manual_seed(0)
    teacher = recipe_model(recipe).eval()
    images = [torch.randn(5, 1, 8, 8)]
    with torch.no_grad():
        wanted = [teacher(images[0])]
    before = copy.deepcopy(teacher.state_dict())
    assert swap_divergence(teacher, SITES[0], teacher.get_submodule(SITES[0]), images, wanted) == pytest.approx(0, abs=1e-7)
    noisy = copy.deepcopy(teacher.get_submodule(SITES[0]))
    torch.nn.init.normal_(noisy.proj.weight)
    swapped = copy.deepcopy(teacher)
    swapped.set_submodule(SITES[0], noisy)
    with torch.no_grad():
        expected = F.kl_div(F.log_softmax(swapped(images[0]), -1), F.log_softmax(wanted[0], -1), log_target=True, reduction="batchmean").item()
    assert swap_divergence(teacher, SITES[0], noisy, images, wanted) == pytest.approx(expected, rel=1e-5)
    assert not isinstance(teacher.get_submodule(SITES[0]), SiteAdapter) and teacher.get_submodule(SITES[0]) is not noisy  # put back
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
