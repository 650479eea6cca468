"""Analytical ReRAM crossbar cost model and GPU roofline baseline.

Three phases: `extract_workload` turns a shape-propagated fx graph into a
`Workload` (`record_workload` runs a model fx cannot trace instead; the only
step that needs torch, imported on first use);
`get_device` builds a validated `Device` from a preset and overrides;
`estimate` prices every op with one formula per op kind and schedules them.
`noisy_matmul` (with `program_matrix` and `read_matrix`) computes a product as
the crossbar would, with the device's noise, and `device_noise` runs a whole model
so, one Monte-Carlo seed at a time (torch, imported on first use).

Example:
    >>> from hwmodel import Gemm, Workload, estimate, get_device
    >>> e = estimate(Workload((Gemm(rows=192, cols=576, vectors=197),)), get_device("isaac"))
    >>> e.total.crossbars, e.total.latency_s > 0
    (72, True)
"""

from __future__ import annotations

from typing import Any

from hwmodel.budget import Budget, chip_budget, ima_budget, peak_ops_per_s, tile_budget
from hwmodel.cost import Cost
from hwmodel.device import Device
from hwmodel.gpu import GPUS, Gpu, get_gpu, implied_efficiency, roofline, roofline_total
from hwmodel.presets import PRESETS, get_device
from hwmodel.pricing import Options, Policy, price
from hwmodel.schedule import Estimate, critical_path, estimate
from hwmodel.workload import Elementwise, Gemm, Nonlinear, Op, Product, Recurrence, Workload, block_of

__all__ = [
    "GPUS",
    "PRESETS",
    "Budget",
    "Cost",
    "Device",
    "Elementwise",
    "Estimate",
    "Gemm",
    "Gpu",
    "Nonlinear",
    "Op",
    "Options",
    "Policy",
    "Product",
    "Recurrence",
    "Workload",
    "block_of",
    "chip_budget",
    "critical_path",
    "device_noise",
    "estimate",
    "extract_workload",
    "get_device",
    "get_gpu",
    "ima_budget",
    "implied_efficiency",
    "noisy_matmul",
    "peak_ops_per_s",
    "price",
    "program_matrix",
    "read_matrix",
    "record_workload",
    "roofline",
    "roofline_total",
    "tile_budget",
]


def __getattr__(name: str) -> Any:
    """`extract_workload`, `record_workload` and the noise model import torch, so they load only when asked for."""
    if name == "extract_workload":
        from hwmodel.extract import extract_workload

        return extract_workload
    if name == "record_workload":
        from hwmodel.record import record_workload

        return record_workload
    if name == "device_noise":
        from hwmodel.analog import device_noise

        return device_noise
    if name in ("noisy_matmul", "program_matrix", "read_matrix"):
        from hwmodel import noise

        return getattr(noise, name)
    raise AttributeError(f"module 'hwmodel' has no attribute {name!r}")
