"""The exact solver against brute-force enumeration (property), scipy's MILP (one instance), and its refusals."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import Bounds, LinearConstraint, milp

from surgery.errors import SurgeryError
from surgery.search import Mix, Option, choose, pareto_front

METRICS = ("energy", "params")
Sites = dict[str, list[Option]]


@st.composite
def instances(draw: st.DrawFn) -> tuple[Sites, dict[str, float]]:
    """Sites with options whose losses and costs are quarters (sums exact in floats), and maybe a params limit."""
    quarters = st.integers(0, 40).map(lambda n: n / 4)
    sites = {
        f"blocks.{index}.attn": [Option(f"o{k}", draw(quarters) - 2, {m: draw(quarters) for m in METRICS}) for k in range(draw(st.integers(1, 4)))]
        for index in range(draw(st.integers(1, 4)))
    }
    limits = {"params": draw(st.integers(1, 120).map(lambda n: n / 4))} if draw(st.booleans()) else {}
    return sites, limits


def every_mix(sites: Sites, base: dict[str, float] | None = None) -> list[Mix]:
    """Brute force: every combination of one option per site, with its totals."""
    mixes = []
    for combo in itertools.product(*sites.values()):
        cost = {m: (base or {}).get(m, 0.0) + sum(option.cost[m] for option in combo) for m in METRICS}
        mixes.append(Mix({path: option.name for path, option in zip(sites, combo)}, sum(option.loss for option in combo), cost))
    return mixes


def fits(mix: Mix, limits: dict[str, float]) -> bool:
    return all(mix.cost[m] <= limit for m, limit in limits.items())


def beats(a: Mix, b: Mix) -> bool:
    """`a` is at least as good as `b` in energy and loss, and better in one."""
    return a.cost["energy"] <= b.cost["energy"] and a.loss <= b.loss and (a.cost["energy"], a.loss) != (b.cost["energy"], b.loss)


@settings(deadline=None, max_examples=300)
@given(instances(), st.integers(1, 160).map(lambda n: n / 4))
def test_front_is_exact_against_brute_force(instance: tuple[Sites, dict[str, float]], energy: float) -> None:
    sites, limits = instance
    feasible = [mix for mix in every_mix(sites) if fits(mix, limits)]
    if not feasible:
        with pytest.raises(SurgeryError, match="no mix fits the budget"):
            pareto_front(sites, "energy", limits)
        return
    front = pareto_front(sites, "energy", limits)
    by_choice = {tuple(mix.sites.values()): mix for mix in feasible}
    for mix in front:  # achievable, as stated, within the limits, and not beaten
        assert by_choice[tuple(mix.sites.values())] == mix
        assert not any(beats(other, mix) for other in feasible)
    for other in feasible:  # complete: every feasible mix is matched or beaten by one on the front
        assert any(mix.cost["energy"] <= other.cost["energy"] and mix.loss <= other.loss for mix in front)
    assert [mix.cost["energy"] for mix in front] == sorted({mix.cost["energy"] for mix in front})
    assert all(later.loss < earlier.loss for earlier, later in itertools.pairwise(front))
    best = [mix.loss for mix in feasible if mix.cost["energy"] <= energy]
    if best:
        assert choose(front, {"energy": energy, **limits}).loss == min(best)
    else:
        with pytest.raises(SurgeryError, match=f"energy <= {energy:.4g} is tightest; the cheapest mix reaches {front[0].cost['energy']:.4g}"):
            choose(front, {"energy": energy, **limits})


def test_base_cost_is_added_to_every_mix() -> None:
    sites = {"a": [Option("keep", 0.0, {"energy": 2.0, "params": 1.0}), Option("conv", 1.0, {"energy": 1.0, "params": 1.0})]}
    front = pareto_front(sites, "energy", {"params": 11.0}, base={"energy": 10.0, "params": 10.0})
    assert [(mix.sites["a"], mix.cost) for mix in front] == [("conv", {"energy": 11.0, "params": 11.0}), ("keep", {"energy": 12.0, "params": 11.0})]


def test_ties_keep_the_first_options() -> None:
    site = [Option("keep", 0.0, {"energy": 1.0}), Option("conv", 0.0, {"energy": 1.0}), Option("bilstm", 0.5, {"energy": 0.5})]
    front = pareto_front({"a": site, "b": site}, "energy")
    assert [list(mix.sites.values()) for mix in front] == [["bilstm", "bilstm"], ["keep", "bilstm"], ["keep", "keep"]]
    assert choose(front, {"energy": 1.5}).sites == {"a": "keep", "b": "bilstm"}


def test_a_budget_at_the_teachers_cost_fits_sums_taken_site_by_site() -> None:
    sites = {f"s{i}": [Option("keep", 0.0, {"energy": 0.1}), Option("conv", 1.0, {"energy": 0.05})] for i in range(10)}
    teacher = 0.1 * 10  # 1.0, while ten additions of 0.1 make 0.9999999999999999 (or more, in another order)
    assert choose(pareto_front(sites, "energy"), {"energy": teacher}).loss == 0.0


def test_mixes_costing_the_same_but_for_rounding_are_one_point_of_the_front() -> None:
    """The quickstart's ReRAM energies: one BiLSTM among convolutions costs 1.3276390783749997e-05 at block 2 and
    1.327639078375e-05 at block 3, the same sum taken in another order; only the better of the two is on the front."""
    conv, bilstm = 9.004886853333333e-07, 2.7217276986666666e-06
    sites = {f"blocks.{i}.attn": [Option("conv", -0.009, {"energy": conv}), Option("bilstm", -0.015 - 0.001 * i, {"energy": bilstm})] for i in range(4)}
    front = pareto_front(sites, "energy", base={"energy": 7.85319702908333e-06})
    assert [list(mix.sites.values()).count("bilstm") for mix in front] == [0, 1, 2, 3, 4]
    assert [mix.sites["blocks.3.attn"] for mix in front[1:]] == ["bilstm"] * 4  # each time the best site for it


def test_an_unreachable_budget_names_the_tightest_metric_and_the_cheapest_reach() -> None:
    site = [Option("keep", 0.0, {"energy": 2.0, "params": 3.0}), Option("conv", 1.0, {"energy": 1.0, "params": 1.0})]
    with pytest.raises(SurgeryError, match=r"params <= 1 is tightest; the cheapest mix reaches 2$"):
        pareto_front({"a": site, "b": site}, "energy", {"params": 1.0, "energy": 100.0})
    front = pareto_front({"a": site, "b": site}, "energy")
    with pytest.raises(SurgeryError, match=r"energy <= 1.5 is tightest; the cheapest mix reaches 2$"):
        choose(front, {"energy": 1.5, "params": 10.0})


def test_budgets_met_alone_but_not_together_say_so() -> None:
    site = [Option("a", 0.0, {"energy": 0.0, "params": 1.0}), Option("b", 0.0, {"energy": 1.0, "params": 0.0})]
    with pytest.raises(SurgeryError, match="each budget is met alone, not all at once"):
        pareto_front({"s": site}, "energy", {"energy": 0.5, "params": 0.5})


@pytest.mark.parametrize(
    ("sites", "axis", "message"),
    [
        ({}, "energy", "no site to search"),
        ({"s": []}, "energy", "no option costs 'energy'"),
        ({"s": [Option("a", 0, {"energy": 1}), Option("a", 1, {"energy": 0})]}, "energy", r"site s: give each option once"),
        ({"s": [Option("a", 0, {"energy": 1}), Option("b", 1, {"params": 0})]}, "energy", "option b: costs params; the others cost energy"),
        ({"s": [Option("a", 0, {"energy": -1})]}, "energy", "costs must not be negative"),
        ({"s": [Option("a", 0, {"energy": 1})]}, "macs", "no option costs 'macs'; they cost energy"),
    ],
)
def test_malformed_problems_are_refused(sites: Sites, axis: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pareto_front(sites, axis)


def test_a_non_positive_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="a budget must be positive"):
        choose([Mix({}, 0.0, {"energy": 1.0})], {"energy": 0.0})


def test_choice_matches_scipy_milp() -> None:
    """The MILP of the same knapsack (one binary per site and option, one option per site) finds the same optimum."""
    rng = np.random.default_rng(0)
    n_sites, n_options = 8, 5
    loss, energy, params = (rng.uniform(0, 1, (n_sites, n_options)) for _ in range(3))
    sites = {f"s{i}": [Option(f"o{k}", loss[i, k], {"energy": energy[i, k], "params": params[i, k]}) for k in range(n_options)] for i in range(n_sites)}
    budget = {"energy": 0.3 * n_sites, "params": 0.35 * n_sites}
    chosen = choose(pareto_front(sites, "energy", {"params": budget["params"]}), budget)
    one_each = np.kron(np.eye(n_sites), np.ones(n_options))
    constraints = [LinearConstraint(one_each, 1, 1), LinearConstraint(np.stack([energy.ravel(), params.ravel()]), -np.inf, list(budget.values()))]
    result = milp(loss.ravel(), constraints=constraints, integrality=np.ones(loss.size), bounds=Bounds(0, 1))
    assert result.success and chosen.loss == pytest.approx(result.fun, abs=1e-9)
    assert [f"o{k}" for k in result.x.reshape(n_sites, n_options).argmax(axis=1)] == list(chosen.sites.values())


@pytest.mark.parametrize(("n_sites", "limits"), [(12, {"params": 4.8, "macs": 4.8}), (50, {})])
def test_searches_of_realistic_size_give_a_front_within_the_limits(n_sites: int, limits: dict[str, float]) -> None:
    """Identical blocks (a ViT's) price each of 10 candidates alike at every site; only the predicted losses differ."""
    rng = np.random.default_rng(1)
    costs = [{"energy": e, "params": p, "macs": m} for e, p, m in rng.uniform(0, 1, (10, 3))]
    sites = {f"blocks.{i}.attn": [Option(f"o{k}", rng.uniform(0, 1), cost) for k, cost in enumerate(costs)] for i in range(n_sites)}
    front = pareto_front(sites, "energy", limits)
    assert len(front) > 1 and all(fits(mix, limits) for mix in front)
    assert all(a.cost["energy"] <= b.cost["energy"] and a.loss > b.loss for a, b in zip(front, front[1:]))
