"""Pricing a whole workload: per-op costs, the critical path, layer pipelining, per-block rows.

Every op has its own hardware (weights are stationary, written operands get
dedicated crossbars), so an op starts as soon as the ops it depends on finish:
one image's latency is the longest dependency chain, and independent ops (the
heads and directions of a multi-head BiLSTM) overlap. With layer pipelining,
images stream through the ops like ISAAC's layer pipeline: a new image enters
every `interval_s`, the time of the slowest op.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from hwmodel.budget import crossbars_per_chip
from hwmodel.cost import Cost, total
from hwmodel.device import Device
from hwmodel.digital import mac_lanes
from hwmodel.pricing import Options, Policy, price
from hwmodel.workload import Op, Product, Workload


@dataclass(frozen=True)
class Estimate:
    """The cost of one inference of a workload on a device.

    Attributes:
        total: summed op costs, with `latency_s` the critical path of one image
            (`write_latency_s` stays the sum over ops).
        interval_s: time between images under layer pipelining (the slowest op).
        ops: each op's own cost, in workload order.
        blocks: summed costs per block, each with its own critical path as latency.
        area_mm2: crossbar area plus, under the `digital` policy, the MAC lanes.
        chips: chips needed to hold every crossbar.
        lifetime_inferences: inferences a written crossbar survives (inf when nothing is written).
    """

    device: str
    policy: Policy
    total: Cost
    interval_s: float
    ops: tuple[Cost, ...]
    blocks: dict[str, Cost]
    area_mm2: float
    chips: int
    lifetime_inferences: float

    @property
    def throughput(self) -> float:
        """Inferences per second with layer pipelining."""
        return 1 / self.interval_s if self.interval_s > 0 else math.inf

    @property
    def lifetime_s(self) -> float:
        """Seconds until written crossbars wear out when running at full throughput."""
        return self.lifetime_inferences * self.interval_s


def estimate(
    workload: Workload,
    device: Device,
    *,
    policy: Policy = "write",
    replicas: int = 1,
    blocks: Sequence[str] | None = None,
) -> Estimate:
    """Price every op of `workload`, then schedule them.

    Args:
        workload: ops from `hwmodel.extract_workload`.
        device: a validated device, e.g. `hwmodel.get_device("isaac")`.
        policy: "write" or "digital" for activation x activation products.
        replicas: most copies of each weight matrix.
        blocks: block paths for the per-block rows (default: `blocks.N` prefixes).

    Example:
        >>> from hwmodel import Gemm, Workload, get_device
        >>> e = estimate(Workload((Gemm(rows=128, cols=128, vectors=1),)), get_device("isaac"))
        >>> round(e.total.latency_s * 1e9)  # 16 input bits, 1-bit DACs, 100 ns cycles
        1600
    """
    options = Options(policy=policy, replicas=replicas)
    costs = tuple(price(op, device, options) for op in workload.ops)
    summed = total(costs)
    rows = {name: _block_cost(workload.ops, costs, set(members)) for name, members in workload.blocks(blocks).items()}
    return Estimate(
        device=device.name,
        policy=policy,
        total=replace(summed, latency_s=critical_path(workload.ops, costs)),
        interval_s=max((c.latency_s for c in costs), default=0.0),
        ops=costs,
        blocks=rows,
        area_mm2=summed.area_mm2 + _mac_area(workload, device, policy),
        chips=math.ceil((summed.crossbars + summed.write_crossbars) / crossbars_per_chip(device)),
        lifetime_inferences=_lifetime(summed, device),
    )


def critical_path(ops: Sequence[Op], costs: Sequence[Cost], members: set[int] | None = None) -> float:
    """Longest chain of op latencies through `deps`, counting only ops in `members` (default: all)."""
    finish: dict[int, float] = {}
    for index, (op, cost) in enumerate(zip(ops, costs)):
        if members is None or index in members:
            start = max((finish[d] for d in op.deps if d in finish), default=0.0)
            finish[index] = start + cost.latency_s
    return max(finish.values(), default=0.0)


def _block_cost(ops: Sequence[Op], costs: Sequence[Cost], members: set[int]) -> Cost:
    summed = total([costs[i] for i in sorted(members)])
    return replace(summed, latency_s=critical_path(ops, costs, members))


def _mac_area(workload: Workload, device: Device, policy: Policy) -> float:
    """The digital policy adds the chip's MAC lanes, once, when there is a product to run on them."""
    if policy != "digital" or not workload.of_kind(Product):
        return 0.0
    return mac_lanes(device) * device.digital.mac_area_mm2


def _lifetime(summed: Cost, device: Device) -> float:
    """Each written crossbar is dedicated to one operand, so its cells take one program cycle per verify round."""
    if summed.cell_writes == 0:
        return math.inf
    return device.crossbar.endurance_writes / device.crossbar.write_verify_iterations
