"""Pricing a teacher and its student with hwmodel: crossbar estimates per block and in total, beside a GPU roofline.

Both models are traced with the site paths as leaves, so each site (the
attention, or the `SiteAdapter` around its substitute) stays one call that
hwmodel's recorder expands by running it on zeros of the traced shapes; a model
torch.fx cannot trace (a Hugging Face text model) is recorded whole, by running
it on its example input. Block
rows are the layers holding a site: its nearest ancestor numbered in a container
(`blocks.3` for `blocks.3.attn`, `encoder.layer.3` for BERT's
`encoder.layer.3.attention.self`), else its parent; ops outside them are grouped
by their top-level module (`patch_embed`, `head`).
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from torch import nn

from hwmodel import Cost, Device, Estimate, Gpu, Policy, Workload, estimate, extract_workload, record_workload, roofline_total
from surgery.graph.shaped import ShapedGraphs, evaluating
from surgery.models import example_input
from surgery.recipe import Recipe
from surgery.recipe.hardware import resolve_hardware
from surgery.rewrite.plan import Plan, block_paths


@dataclass(frozen=True)
class ModelCost:
    """One model on the crossbar device, and the same workload on the GPU roofline."""

    estimate: Estimate
    gpu: Cost


@dataclass(frozen=True)
class CostReport:
    """Teacher and student priced on one device under one policy, for one input at batch 1."""

    device: str
    policy: Policy
    gpu: str
    input_size: tuple[int, ...]
    teacher: ModelCost
    student: ModelCost

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: SI units in the key names, per-block rows under each model's `blocks`."""
        head = {"device": self.device, "policy": self.policy, "gpu": self.gpu, "input_size": list(self.input_size), "batch": 1}
        return {**head, "teacher": _model_json(self.teacher), "student": _model_json(self.student)}


def price_models(recipe: Recipe, plan: Plan, teacher: nn.Module, student: nn.Module, graphs: ShapedGraphs | None = None) -> CostReport:
    """Price `teacher` and `student` (from `plan`) on the recipe's device, policy and GPU; `graphs` may hold their
    traces already (the shape check's).

    Example:
        >>> from surgery.rewrite.student import plan_and_build
        >>> from surgery.recipe import load_recipe
        >>> recipe = load_recipe("recipes/deit_far.yaml")
        >>> report = price_models(recipe, *plan_and_build(recipe, "meta"))
        >>> report.student.estimate.total.write_crossbars, report.teacher.estimate.total.write_crossbars > 0
        (0, True)
    """
    device, gpu = resolve_hardware(recipe)
    policy = recipe.hardware.policy
    graphs = graphs or ShapedGraphs()
    models = {name: workload_of(model, plan.site_paths, plan.input_size, graphs) for name, model in (("teacher", teacher), ("student", student))}
    priced = {name: price_workload(work, plan.selected_paths, device, gpu, policy) for name, work in models.items()}
    return CostReport(device.name, policy, gpu.name, plan.input_size, priced["teacher"], priced["student"])


def price_workload(work: Workload, sites: Collection[str], device: Device, gpu: Gpu, policy: Policy) -> ModelCost:
    """One model's estimate with a row per layer holding one of `sites`, and its GPU roofline."""
    rows = estimate(work, device, policy=policy, blocks=layer_paths(sites))
    return ModelCost(rows, roofline_total(work, gpu))


def layer_paths(sites: Collection[str]) -> list[str]:
    """The layer of each site, in order: its nearest ancestor numbered in a container, else its parent.

    Example:
        >>> layer_paths(["blocks.3.attn", "encoder.layer.0.attention.self", "attn_pool"])
        ['blocks.3', 'encoder.layer.0', 'attn_pool']
    """
    layers = []
    for site in sites:
        parts = site.split(".")
        numbered = [i for i in range(1, len(parts) - 1) if parts[i].isdigit()]
        layers.append(".".join(parts[: numbered[-1] + 1]) if numbered else block_paths([site])[0])
    return list(dict.fromkeys(layers))


def workload_of(model: nn.Module, sites: Collection[str], input_size: tuple[int, ...], graphs: ShapedGraphs | None = None) -> Workload:
    """hwmodel's ops of one batch-1 forward, the sites kept whole as fx leaves (or the model run whole, in eval mode,
    where torch.fx cannot trace it)."""
    example = example_input(model, input_size)
    graph = (graphs or ShapedGraphs()).of(model, sites, example)
    if graph is not None:
        return extract_workload(graph)
    with evaluating(model):
        return record_workload(model, example)


def _model_json(cost: ModelCost) -> dict[str, Any]:
    est = cost.estimate
    lifetime = None if math.isinf(est.lifetime_inferences) else est.lifetime_inferences
    return {
        **_cost_json(est.total),
        "area_mm2": est.area_mm2,
        "chips": est.chips,
        "interval_s": est.interval_s,
        "lifetime_inferences": lifetime,
        "energy_by_component_j": energy_by_component(est.total),
        "gpu": {"latency_s": cost.gpu.latency_s, "energy_j": cost.gpu.energy_j, "traffic_bytes": cost.gpu.traffic_bytes},
        "blocks": [{"block": name, **_cost_json(row)} for name, row in est.blocks.items()],
    }


def _cost_json(cost: Cost) -> dict[str, Any]:
    return {
        "latency_s": cost.latency_s,
        "energy_j": cost.energy_j,
        "traffic_bytes": cost.traffic_bytes,
        "area_mm2": cost.area_mm2,
        "crossbars": cost.crossbars,
        "write_crossbars": cost.write_crossbars,
        "adc_share": cost.adc_j / cost.energy_j if cost.energy_j else 0.0,
        "write_share": cost.write_j / cost.energy_j if cost.energy_j else 0.0,
        "macs": cost.macs,
    }


def energy_by_component(cost: Cost) -> dict[str, float]:
    """Joules per source; they sum to `cost.energy_j` (ADCs split out of the rest of the analog read)."""
    return {
        "adc": cost.adc_j,
        "other_analog": cost.analog_j - cost.adc_j,
        "digital": cost.digital_j,
        "traffic": cost.traffic_j,
        "write": cost.write_j,
    }
