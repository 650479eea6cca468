"""What a plan changes, in numbers: per-site and total parameters and MACs, and the hardware cost, teacher vs student."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

from surgery.graph.shaped import ShapedGraphs
from surgery.measure.costing import CostReport, price_models
from surgery.measure.counting import Counts, count, count_graph, module_params
from surgery.models import Device, example_input
from surgery.recipe import Recipe
from surgery.rewrite.plan import Plan, Skip, Step
from surgery.rewrite.student import plan_and_build


@dataclass(frozen=True)
class SiteChange:
    """One replaced site: its shapes and what the substitute costs against the attention."""

    index: int
    path: str
    class_name: str
    num_heads: int
    head_dim: int
    dim: int
    seq_len: int | None
    substitute: str
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int


@dataclass(frozen=True)
class ModelTotals:
    name: str
    params: int
    macs: int


@dataclass(frozen=True)
class PlanSummary:
    """The table `surgery plan` prints; MACs are multiply-accumulates (FLOPs / 2) for one input."""

    input_size: tuple[int, ...]
    sites: list[SiteChange]
    unselected: list[str]
    skipped: list[Skip]
    """Sites a glob selected that no adapter fits, left as attention with the reason."""
    teacher: ModelTotals
    student: ModelTotals
    cost: CostReport

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        for site in data["sites"]:
            site["class"] = site.pop("class_name")
        data["cost"] = self.cost.to_json()
        return {"macs_unit": "multiply-accumulates (FLOPs / 2), batch 1", **data}


def summarize(plan: Plan, teacher: nn.Module, student: nn.Module, cost: CostReport, graphs: ShapedGraphs | None = None) -> PlanSummary:
    """Count teacher and student once each (from their graphs in `graphs`, where those were made) and line the sites up."""
    before, after = (_count(model, plan, graphs or ShapedGraphs()) for model in (teacher, student))
    selected = set(plan.selected_paths)
    return PlanSummary(
        input_size=plan.input_size,
        sites=[_change(step, teacher, student, before, after) for step in plan.steps],
        unselected=[site.path for site in plan.sites if site.path not in selected],
        skipped=list(plan.skipped),
        teacher=ModelTotals(plan.model, before.params, before.macs),
        student=ModelTotals(f"{plan.model} + surgery", after.params, after.macs),
        cost=cost,
    )


def _change(step: Step, teacher: nn.Module, student: nn.Module, before: Counts, after: Counts) -> SiteChange:
    site = step.site
    return SiteChange(
        index=site.index,
        path=site.path,
        class_name=site.class_name,
        num_heads=site.num_heads,
        head_dim=site.head_dim,
        dim=site.dim,
        seq_len=site.seq_len,
        substitute=step.substitute,
        params_before=module_params(teacher, site.path),
        params_after=module_params(student, site.path),
        macs_before=before.module_macs(site.path),
        macs_after=after.module_macs(site.path),
    )


def summarize_recipe(recipe: Recipe, device: Device = "cpu") -> PlanSummary:
    """What `surgery plan` shows: the recipe planned and applied without weights, counted and priced."""
    graphs = ShapedGraphs()
    surgery_plan, teacher, student = plan_and_build(recipe, device, graphs)
    return summarize(surgery_plan, teacher, student, price_models(recipe, surgery_plan, teacher, student, graphs), graphs)


def _count(model: nn.Module, plan: Plan, graphs: ShapedGraphs) -> Counts:
    graph = graphs.of(model, plan.site_paths, example_input(model, plan.input_size))
    return count(model, plan.input_size) if graph is None else count_graph(model, graph)
