"""DeiT-Tiny vs FAR-Tiny on the ISAAC crossbar model at 224 and 384 px, under both product policies: Markdown tables.

The first table is the ratios README quotes (FAR / DeiT, whole model, batch 1);
the second opens one replaced site (`blocks.0.attn`: the attention against the
multi-head BiLSTM) to show where each difference comes from.

    python benchmarks/cost_table.py [--model deit_tiny_patch16_224] [--sizes 224 384] [--device-preset isaac]
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from torch import nn

from hwmodel import Estimate, Product, Recurrence, Workload, estimate
from surgery.measure.costing import price_models, workload_of
from surgery.recipe import Recipe, recipe_from_data
from surgery.recipe.hardware import resolve_hardware
from surgery.rewrite.student import plan_and_build

POLICIES = ("write", "digital")
SITE = "blocks.0.attn"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="deit_tiny_patch16_224")
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 384])
    parser.add_argument("--device-preset", default="isaac")
    args = parser.parse_args()
    rows = list(_configs(args.model, args.sizes, args.device_preset))
    print(f"FAR / DeiT ({args.model}, {args.device_preset}, batch 1):\n")
    _print(["image", "tokens", "policy", "memory traffic", "latency", "energy"], [r[0] for r in rows])
    print(f"\nInside {SITE} (attention → multi-head BiLSTM), DeiT → FAR:\n")
    columns = ["image", "policy", "site latency µs", "site energy µJ", "site traffic kB", "products / LSTMs energy µJ", "ADC share"]
    _print(columns, [r[1] for r in rows])


def _configs(model: str, sizes: list[int], preset: str) -> Iterator[tuple[list[str], list[str]]]:
    """Plan and apply once per image size, then price under each policy."""
    for size in sizes:
        data = {"name": "cost_table", "model": {"name": model, "kwargs": {"img_size": size}}, "rewrites": [{}]}
        plan, teacher, student = plan_and_build(recipe_from_data(data), "meta")
        work = [workload_of(m, plan.selected_paths, plan.input_size) for m in (teacher, student)]
        for policy in POLICIES:
            recipe = recipe_from_data(data, [f"hardware.policy={policy}", f"hardware.preset={preset}"])
            yield _ratios(recipe, plan, teacher, student, size), _site(recipe, work, size)


def _ratios(recipe: Recipe, plan, teacher: nn.Module, student: nn.Module, size: int) -> list[str]:
    report = price_models(recipe, plan, teacher, student)
    deit, far = report.teacher.estimate.total, report.student.estimate.total
    ratios = [far.traffic_bytes / deit.traffic_bytes, far.latency_s / deit.latency_s, far.energy_j / deit.energy_j]
    return [f"{size} px", str(plan.sites[0].seq_len), recipe.hardware.policy, *(f"×{r:.2f}" for r in ratios)]


def _site(recipe: Recipe, work: list[Workload], size: int) -> list[str]:
    """The site's own critical path, energy and traffic, and the part spent in products (DeiT) or LSTMs (FAR)."""
    device, _ = resolve_hardware(recipe)
    deit, far = (estimate(w, device, policy=recipe.hardware.policy, blocks=[SITE]) for w in work)
    core = [_energy_of(w, e, kind) * 1e6 for w, e, kind in ((work[0], deit, Product), (work[1], far, Recurrence))]
    cells = [(c.latency_s * 1e6, c.energy_j * 1e6, c.traffic_bytes / 1e3) for c in (deit.blocks[SITE], far.blocks[SITE])]
    share = [c.adc_j / c.energy_j for c in (deit.blocks[SITE], far.blocks[SITE])]
    spans = [f"{a:.0f} → {b:.0f}" for a, b in zip(*cells)]
    return [f"{size} px", recipe.hardware.policy, *spans, f"{core[0]:.1f} → {core[1]:.1f}", f"{share[0]:.0%} → {share[1]:.0%}"]


def _energy_of(work: Workload, priced: Estimate, kind: type) -> float:
    return sum(cost.energy_j for op, cost in zip(work.ops, priced.ops) if isinstance(op, kind) and op.path.startswith(SITE))


def _print(columns: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
