"""What each option costs at each searched site, and what the rest of the model costs, so that a mix's cost is a sum.

Each option is priced once, in the student where every searched site takes it (a uniform student): a site's
cost is what runs inside its module (the attention, or the adapter around its substitute), found by per-module
counting (params, MACs), by hwmodel rows per site path (ReRAM energy and latency) and by timing the site's module
alone (CPU latency). The rest of the model, the base, is the teacher's total less its sites. Energy, params and
MACs add exactly; ReRAM latency adds along the critical path of a chain of blocks; CPU latency adds up to what
ONNX Runtime spends between the ops of one graph.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from torch import nn

from hwmodel import Cost, estimate
from surgery.errors import SurgeryError
from surgery.graph.shaped import ShapedGraphs
from surgery.measure.costing import workload_of
from surgery.measure.counting import count, module_params
from surgery.recipe import Metric, Recipe
from surgery.recipe.hardware import resolve_hardware
from surgery.search.cpu_latency import site_latencies

Costs = dict[str, dict[str, float]]
"""Site path -> metric -> cost."""


@dataclass(frozen=True)
class CostTable:
    """Costs per site and option, the base every mix pays, and the teacher's totals (which "0.8x" budgets scale)."""

    sites: dict[str, dict[str, dict[str, float]]]
    """Site path -> option label -> metric -> cost."""
    base: dict[str, float]
    teacher: dict[str, float]

    def mix_cost(self, mix: Mapping[str, str]) -> dict[str, float]:
        """The predicted total of a mix (site path -> option label): the base plus each site's option."""
        return {metric: base + sum(self.sites[path][label][metric] for path, label in mix.items()) for metric, base in self.base.items()}

    def to_json(self) -> dict[str, object]:
        return {"sites": self.sites, "base": self.base, "teacher": self.teacher}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> CostTable:
        return cls(dict(data["sites"]), dict(data["base"]), dict(data["teacher"]))  # type: ignore[arg-type]


Pricer = Callable[[Recipe, Mapping[str, nn.Module], Sequence[str], Sequence[str], tuple[int, ...]], tuple[dict[str, Costs], dict[str, float]]]
"""(recipe, option label -> uniform model, searched sites, every site, input size) -> per option per site costs, and the
teacher's total, in one metric family."""


def cost_table(recipe: Recipe, models: Mapping[str, nn.Module], sites: Sequence[str], all_sites: Sequence[str], input_size: tuple[int, ...],
               metrics: Sequence[Metric]) -> CostTable:
    """Price every option of `models` (option label -> uniform student; `keep` -> the teacher) at every site in `metrics`.

    `all_sites` are every site of the model (searched or not), kept whole as graph leaves so each is priced as one module.

    Raises:
        SurgeryError: the teacher's sites cost more than the whole teacher in some metric (CPU latency of tiny sites,
            whose per-call overhead outweighs the work), so no base is left for the rest of the model.
    """
    per_option: dict[str, dict[str, dict[str, float]]] = {label: {path: {} for path in sites} for label in models}
    teacher: dict[str, float] = {}
    for family, pricer in _PRICERS.items():
        wanted = [metric for metric in family if metric in metrics]
        if not wanted:
            continue
        priced, total = pricer(recipe, models, sites, all_sites, input_size)
        for label, by_site in priced.items():
            for path, costs in by_site.items():
                per_option[label][path].update({metric: costs[metric] for metric in wanted})
        teacher.update({metric: total[metric] for metric in wanted})
    base = {metric: teacher[metric] - sum(per_option["keep"][path][metric] for path in sites) for metric in teacher}
    short = {metric: value for metric, value in base.items() if value < 0}
    if short:
        metric = next(iter(short))
        raise SurgeryError(f"{metric}: the teacher's searched sites cost {teacher[metric] - base[metric]:.4g} alone, more than the whole teacher "
                           f"({teacher[metric]:.4g}); timed alone, sites this small are mostly per-call overhead: budget another metric")
    sites_first = {path: {label: per_option[label][path] for label in models} for path in sites}
    return CostTable(sites_first, base, teacher)


def _counted(recipe: Recipe, models: Mapping[str, nn.Module], sites: Sequence[str], all_sites: Sequence[str], size: tuple[int, ...]):
    """Params and MACs of each site's module (counted by torch's flop counter, recurrences from their weights)."""
    priced, totals = {}, {}
    for label, model in models.items():
        counts = count(model, size)
        priced[label] = {path: {"params": float(module_params(model, path)), "macs": float(counts.module_macs(path))} for path in sites}
        totals[label] = {"params": float(counts.params), "macs": float(counts.macs)}
    return priced, totals["keep"]


def _crossbar(recipe: Recipe, models: Mapping[str, nn.Module], sites: Sequence[str], all_sites: Sequence[str], size: tuple[int, ...]):
    """ReRAM energy and latency of each site's ops on the recipe's device and policy (hwmodel rows per site path)."""
    device, _ = resolve_hardware(recipe)
    graphs, priced, teacher = ShapedGraphs(), {}, {}
    for label, model in models.items():
        rows = estimate(workload_of(model, all_sites, size, graphs), device, policy=recipe.hardware.policy, blocks=list(sites))
        missing = [path for path in sites if path not in rows.blocks]
        if missing and label == "keep":  # a substitute may run nothing (identity); an attention always does
            raise SurgeryError(f"hwmodel saw no op inside the teacher's {', '.join(missing)}")
        priced[label] = {path: {"energy": _row(rows.blocks, path).energy_j, "reram_latency": _row(rows.blocks, path).latency_s} for path in sites}
        if label == "keep":
            teacher = {"energy": rows.total.energy_j, "reram_latency": rows.total.latency_s}
    return priced, teacher


def _row(rows: Mapping[str, Cost], path: str) -> Cost:
    """A site's row; a site that runs no op costs nothing."""
    return rows.get(path, Cost())


def _timed(recipe: Recipe, models: Mapping[str, nn.Module], sites: Sequence[str], all_sites: Sequence[str], size: tuple[int, ...]):
    """CPU latency of each site's module alone and of the whole teacher (ONNX Runtime under appendix A.4's protocol)."""
    per_site, teacher = site_latencies(models, sites, size)
    return {label: {path: {"cpu_latency": seconds} for path, seconds in by_site.items()} for label, by_site in per_site.items()}, {"cpu_latency": teacher}


_PRICERS: dict[tuple[Metric, ...], Pricer] = {("params", "macs"): _counted, ("energy", "reram_latency"): _crossbar, ("cpu_latency",): _timed}
