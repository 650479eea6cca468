"""GPU baseline: a roofline per op, ops run one after another.

An op takes max(FLOPs / peak, bytes / bandwidth) / efficiency. `efficiency`
is a stated fudge factor, 1.0 by default (the pure roofline): DeiT's measured
V100 throughput (DeiT paper, Table 1) is about 5-8 % of fp16 peak, so a
calibrated baseline sets it from `implied_efficiency`. Energy is board power
(TDP) times time, an upper bound for a busy GPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from hwmodel.cost import Cost, total
from hwmodel.device import Spec
from hwmodel.digital import RECIPES
from hwmodel.workload import Elementwise, Gemm, Nonlinear, Op, Recurrence, Workload


class Gpu(Spec):
    """Peak numbers of one GPU."""

    name: str
    peak_tflops: float = Field(gt=0)
    """Dense fp16/bf16 tensor-core peak, TFLOP/s."""
    bandwidth_gbs: float = Field(gt=0)
    """Memory bandwidth, GB/s."""
    tdp_w: float = Field(gt=0)
    """Board power, W."""
    efficiency: float = Field(1.0, gt=0, le=1)
    """Fraction of the roofline actually achieved (1.0: pure roofline)."""
    bytes_per_element: int = Field(2, gt=0)
    """fp16 activations and weights."""


GPUS: dict[str, Gpu] = {
    # peak and bandwidth: hwmodel-anchors.md §4 (NVIDIA datasheets); TDP: NVIDIA datasheets (SXM parts)
    "v100": Gpu(name="v100", peak_tflops=125, bandwidth_gbs=900, tdp_w=300),
    "a100": Gpu(name="a100", peak_tflops=312, bandwidth_gbs=2039, tdp_w=400),
    "h100": Gpu(name="h100", peak_tflops=989, bandwidth_gbs=3350, tdp_w=700),
}


def get_gpu(name: str, overrides: Mapping[str, Any] | None = None) -> Gpu:
    """GPU preset `name` with field `overrides`, validated."""
    if name not in GPUS:
        raise KeyError(f"unknown GPU {name!r}; known: {', '.join(sorted(GPUS))}")
    return Gpu.model_validate({**GPUS[name].model_dump(), **(overrides or {})})


def flops(op: Op) -> float:
    """2 per MAC, plus the digital recipe's operations for nonlinear and elementwise ops."""
    if isinstance(op, (Nonlinear, Elementwise)):
        return sum(RECIPES[op.fn]) * op.elements
    return 2.0 * op.macs


def roofline_op(op: Op, gpu: Gpu) -> Cost:
    """One op's time; a recurrence is `steps` dependent steps, each re-reading W_hh."""
    if isinstance(op, Recurrence):
        return _recurrence(op, gpu)
    return _bound(flops(op), op.bytes / op.itemsize * gpu.bytes_per_element, gpu, op.macs)


def roofline(workload: Workload, gpu: Gpu) -> tuple[Cost, ...]:
    return tuple(roofline_op(op, gpu) for op in workload.ops)


def roofline_total(workload: Workload, gpu: Gpu) -> Cost:
    return total(roofline(workload, gpu))


def implied_efficiency(workload: Workload, gpu: Gpu, measured_per_s: float, batch: int = 1) -> float:
    """The efficiency factor that makes the pure roofline match a measured throughput (inferences/s)."""
    ideal = roofline_total(workload, gpu.model_copy(update={"efficiency": 1.0})).latency_s
    return ideal * measured_per_s / batch


def _recurrence(op: Recurrence, gpu: Gpu) -> Cost:
    w_ih = Gemm(rows=op.input_size, cols=op.gates * op.hidden_size, vectors=op.steps * op.batch)
    step_hh = Gemm(rows=op.hidden_size, cols=op.gates * op.hidden_size, vectors=op.batch)
    gates = RECIPES[f"{op.cell}_cell"]
    step_flops = flops(step_hh) + sum(gates) * op.batch * op.hidden_size
    step = _bound(step_flops, step_hh.bytes / step_hh.itemsize * gpu.bytes_per_element, gpu, step_hh.macs)
    return roofline_op(w_ih, gpu) + step.repeat(op.steps)


def _bound(op_flops: float, op_bytes: float, gpu: Gpu, macs: float) -> Cost:
    seconds = max(op_flops / (gpu.peak_tflops * 1e12), op_bytes / (gpu.bandwidth_gbs * 1e9)) / gpu.efficiency
    return Cost(latency_s=seconds, digital_j=seconds * gpu.tdp_w, traffic_bytes=op_bytes, macs=macs)
