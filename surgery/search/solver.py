"""The exact solver of a search: the Pareto front of predicted loss against one cost, and the best mix in a budget.

A multiple-choice knapsack: each site takes exactly one option, and losses and (non-negative) costs add over
sites. A dynamic programme over sites keeps every partial mix that no other beats in the front's cost, the loss
and each budgeted cost at once, so the front is exact rather than a relaxation. Two observations keep it small
without losing exactness: a partial mix that even the cheapest remaining options would carry over a budget is
dropped, and a budgeted cost low enough that no completion can exceed its budget is slack, so it no longer tells
partial mixes apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from surgery.errors import SurgeryError

_TOLERANCE = 1e-9
"""Relative slack of every budget: sums taken in another order (the teacher's total, site by site) still meet "1.0x"."""
_BLOCK = 512
"""Rows compared at once when pruning: (kept, block, costs) booleans stay a few MB."""


@dataclass(frozen=True)
class Option:
    """One thing a site may become: its predicted loss and its costs, each added over the sites of a mix."""

    name: str
    loss: float
    cost: Mapping[str, float]


@dataclass(frozen=True)
class Mix:
    """One option per site (site path -> option name, in site order), with the totals; costs include the base."""

    sites: dict[str, str]
    loss: float
    cost: dict[str, float]


@dataclass(frozen=True)
class _Partial:
    """Partial mixes as arrays: option index per site so far (n, s), loss (n,), costs (n, metrics)."""

    choices: np.ndarray
    loss: np.ndarray
    cost: np.ndarray

    def __getitem__(self, rows: np.ndarray) -> _Partial:
        return _Partial(self.choices[rows], self.loss[rows], self.cost[rows])


def pareto_front(
    sites: Mapping[str, Sequence[Option]], axis: str, limits: Mapping[str, float] | None = None, base: Mapping[str, float] | None = None
) -> list[Mix]:
    """Every mix within `limits` that no other mix beats in both loss and `axis` cost, cheapest first.

    `base` is the cost of what no site holds (the rest of the model), added to every mix. Of mixes equal in
    loss and every cost that matters, the one whose options come first (site by site, in each site's order) stays.

    Raises:
        SurgeryError: no mix fits `limits`; names the tightest metric and the cheapest amount reached in it.
        ValueError: a site without options, repeated option names, options costing different metrics, or a negative cost.

    Example:
        >>> site = [Option("keep", 0.0, {"energy": 2.0}), Option("conv", 0.3, {"energy": 1.0})]
        >>> [(list(mix.sites.values()), mix.loss, mix.cost) for mix in pareto_front({"b0": site, "b1": site}, "energy")]
        [(['conv', 'conv'], 0.6, {'energy': 2.0}), (['keep', 'conv'], 0.3, {'energy': 3.0}), (['keep', 'keep'], 0.0, {'energy': 4.0})]
    """
    limits, base = dict(limits or {}), dict(base or {})
    metrics = _metrics(sites, axis, limits, base)
    losses, costs = zip(*(_arrays(path, options, metrics) for path, options in sites.items()))
    bound = np.array([limits.get(metric, np.inf) for metric in metrics]) * (1 + _TOLERANCE)
    fewest, most = _from_each_site([cost.min(axis=0) for cost in costs]), _from_each_site([cost.max(axis=0) for cost in costs])
    along, budgeted = metrics.index(axis), [metrics.index(metric) for metric in limits if metric != axis]
    partial = _Partial(np.zeros((1, 0), dtype=int), np.zeros(1), np.array([[base.get(metric, 0.0) for metric in metrics]]))
    for index, (loss, cost) in enumerate(zip(losses, costs)):
        partial = _extend(partial, loss, cost)
        partial = partial[np.all(partial.cost + fewest[index + 1] <= bound, axis=1)]  # the cheapest completion still fits
        if not len(partial.loss):
            raise _infeasible(limits, {metric: base.get(metric, 0.0) + fewest[0][metrics.index(metric)] for metric in limits})
        slack = bound - most[index + 1]  # at or below it, a cost can no longer break its budget
        partial = partial[_undominated(partial, partial.cost[:, along], np.maximum(partial.cost, slack)[:, budgeted])]
    return [_mix(sites, metrics, partial, row) for row in range(len(partial.loss))]


def choose(front: Sequence[Mix], budget: Mapping[str, float]) -> Mix:
    """The mix of `front` with the lowest loss within every budget; of equal losses, the first (cheapest) one.

    Budgets on other metrics than the front's axis should be the limits the front was built with: the front keeps
    the best mixes within those only.

    Raises:
        SurgeryError: no mix fits; names the tightest metric and the cheapest amount the front reaches in it.

    Example:
        >>> front = [Mix({"b0": "conv"}, 0.3, {"energy": 1.0}), Mix({"b0": "keep"}, 0.0, {"energy": 2.0})]
        >>> choose(front, {"energy": 1.5}).sites
        {'b0': 'conv'}
    """
    if not front:
        raise ValueError("an empty front has nothing to choose from")
    _check_limits(budget, front[0].cost)
    fitting = [index for index, mix in enumerate(front) if all(mix.cost[metric] <= limit * (1 + _TOLERANCE) for metric, limit in budget.items())]
    if not fitting:
        raise _infeasible(budget, {metric: min(mix.cost[metric] for mix in front) for metric in budget})
    return front[min(fitting, key=lambda index: (front[index].loss, index))]


def _metrics(sites: Mapping[str, Sequence[Option]], axis: str, limits: Mapping[str, float], base: Mapping[str, float]) -> list[str]:
    """The metrics every option costs (the first option's, in its order), which must cover the axis, limits and base."""
    if not sites:
        raise ValueError("no site to search")
    first = next(iter(sites.values()))
    metrics = list(first[0].cost) if first else []
    _check_limits({axis: 1.0, **limits}, metrics)
    unknown = set(base) - set(metrics)
    if unknown:
        raise ValueError(f"the base costs {', '.join(sorted(unknown))}, which the options do not")
    return metrics


def _check_limits(limits: Mapping[str, float], metrics: Sequence[str]) -> None:
    for metric, limit in limits.items():
        if metric not in metrics:
            raise ValueError(f"no option costs {metric!r}; they cost {', '.join(metrics)}")
        if not limit > 0:
            raise ValueError(f"a budget must be positive, got {metric} <= {limit}")


def _arrays(path: str, options: Sequence[Option], metrics: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """One site's options as arrays: loss (k,) and costs (k, metrics)."""
    names = [option.name for option in options]
    if not options or len(set(names)) < len(names):
        raise ValueError(f"site {path}: give each option once, and at least one; got {names}")
    for option in options:
        if set(option.cost) != set(metrics):
            raise ValueError(f"site {path}, option {option.name}: costs {', '.join(option.cost)}; the others cost {', '.join(metrics)}")
        if min(option.cost.values(), default=0) < 0:
            raise ValueError(f"site {path}, option {option.name}: costs must not be negative, got {dict(option.cost)}")
    return np.array([option.loss for option in options], dtype=float), np.array([[option.cost[m] for m in metrics] for option in options], dtype=float)


def _from_each_site(per_site: list[np.ndarray]) -> np.ndarray:
    """(sites + 1, metrics): row i sums sites i and after; the last row, after every site, is zero."""
    return np.cumsum([np.zeros_like(per_site[0]), *per_site[::-1]], axis=0)[::-1]


def _extend(partial: _Partial, loss: np.ndarray, cost: np.ndarray) -> _Partial:
    """Every partial mix followed by every option of the next site; (n, k) flattened, options fastest."""
    n, k = len(partial.loss), len(loss)
    choices = np.column_stack([np.repeat(partial.choices, k, axis=0), np.tile(np.arange(k), n)])
    return _Partial(choices, (partial.loss[:, None] + loss[None, :]).ravel(), (partial.cost[:, None, :] + cost[None, :, :]).reshape(n * k, -1))


def _undominated(partial: _Partial, along: np.ndarray, budgeted: np.ndarray) -> np.ndarray:
    """Rows no other row matches or beats in the axis cost `along` (n,), the loss and every `budgeted` cost (n, b); in axis order.
    Costs equal but for rounding (`_snapped`) are equal.

    Sorted by the axis, then loss, then the budgeted costs, then the choices: a row can only be dominated by an
    earlier one, and of exact ties the first choices come first.
    """
    along, budgeted = _snapped(along), _snapped(budgeted)
    order = np.lexsort([along, partial.loss, *budgeted.T, *partial.choices.T][::-1])
    key = np.column_stack([along, partial.loss, budgeted])[order]
    kept = np.zeros(0, dtype=int)
    for start in range(0, len(key), _BLOCK):  # a row beaten by a dropped row is beaten by the row that beat it: check only the kept
        block = key[start : start + _BLOCK]
        beaten = _at_most(key[kept], block).any(axis=0) | np.triu(_at_most(block, block), k=1).any(axis=0)  # earlier kept, earlier in block
        kept = np.concatenate([kept, start + np.flatnonzero(~beaten)])
    return order[kept]


def _snapped(costs: np.ndarray) -> np.ndarray:
    """Costs counted in steps of `_TOLERANCE` of their column's largest. The same costs summed in another order differ
    in the last bits; compared exactly, the mix that came out a bit cheaper would stay on the front beside a better
    one that costs the same."""
    step = np.abs(costs).max(axis=0) * _TOLERANCE
    return np.round(costs / np.where(step > 0, step, 1.0))


def _at_most(rows: np.ndarray, others: np.ndarray) -> np.ndarray:
    """(len(rows), len(others)): whether each row is at most each other row in every column (column by column: fast)."""
    result = np.ones((len(rows), len(others)), dtype=bool)
    for column in range(rows.shape[1]):
        result &= rows[:, column, None] <= others[None, :, column]
    return result


def _mix(sites: Mapping[str, Sequence[Option]], metrics: list[str], partial: _Partial, row: int) -> Mix:
    chosen = {path: sites[path][index].name for path, index in zip(sites, partial.choices[row].tolist())}
    return Mix(chosen, float(partial.loss[row]), dict(zip(metrics, partial.cost[row].tolist())))


def _infeasible(limits: Mapping[str, float], cheapest: Mapping[str, float]) -> SurgeryError:
    """The budget furthest out of reach (by the ratio of the cheapest amount reached to it), in an error."""
    metric = max(limits, key=lambda name: cheapest[name] / limits[name])
    alone = cheapest[metric] > limits[metric] * (1 + _TOLERANCE)
    why = f"the cheapest mix reaches {cheapest[metric]:.4g}" if alone else f"each budget is met alone, not all at once (the cheapest reaches {cheapest[metric]:.4g})"
    return SurgeryError(f"no mix fits the budget: {metric} <= {limits[metric]:.4g} is tightest; {why}")
