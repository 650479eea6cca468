"""One pricing formula per op kind: an op's shapes and the device in, a `Cost` out.

Weight-stationary GEMMs and recurrent weights sit on crossbars; activation x
activation products follow the policy: `write` programs the right operand into
crossbars for every inference, `digital` runs them on digital MAC lanes.
Traffic adds energy but no latency: buffer reads are assumed hidden behind the
crossbar pipeline, as in ISAAC.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from hwmodel.actions import adc_pj, read_energy
from hwmodel.budget import area_per_crossbar_mm2, cycle_ns
from hwmodel.cost import Cost
from hwmodel.device import Device
from hwmodel.digital import lane_work, mac_lanes, run_on_lanes, vector_lanes
from hwmodel.mapping import Tiling, count_reads, tile_matrix
from hwmodel.traffic import move
from hwmodel.workload import Elementwise, Gemm, Nonlinear, Op, Product, Recurrence

Policy = Literal["write", "digital"]


@dataclass(frozen=True)
class Options:
    """Pricing choices that are not properties of the device.

    Attributes:
        policy: how activation x activation products run ("write" or "digital").
        replicas: most copies of each weight matrix, so that many input vectors are read at once.
    """

    policy: Policy = "write"
    replicas: int = 1

    def __post_init__(self) -> None:
        if self.policy not in ("write", "digital"):
            raise ValueError(f"policy must be 'write' or 'digital', got {self.policy!r}")
        if self.replicas < 1:
            raise ValueError(f"replicas must be at least 1, got {self.replicas}")


Formula = Callable[[Op, Device, Options], Cost]
FORMULAS: dict[type[Op], Formula] = {}


def register_formula(kind: type[Op]) -> Callable[[Formula], Formula]:
    def add(formula: Formula) -> Formula:
        if kind in FORMULAS:
            raise ValueError(f"a pricing formula for {kind.__name__} is already registered")
        FORMULAS[kind] = formula
        return formula

    return add


def price(op: Op, device: Device, options: Options = Options()) -> Cost:
    """The cost of one op on `device`."""
    if type(op) not in FORMULAS:
        raise KeyError(f"no pricing formula for {type(op).__name__}; known: {', '.join(k.__name__ for k in FORMULAS)}")
    return FORMULAS[type(op)](op, device, options)


def crossbar_pass(tiling: Tiling, vectors: int, device: Device) -> Cost:
    """`vectors` input vectors read through a mapped matrix: analog energy, latency and footprint."""
    reads = count_reads(tiling, vectors, device)
    analog_pj = read_energy(device).of(reads.row_drives, reads.cell_reads, reads.conversions)
    return Cost(
        latency_s=reads.cycles * cycle_ns(device) * 1e-9,
        analog_j=analog_pj * 1e-12,
        adc_j=reads.conversions * adc_pj(device) * 1e-12,
        digital_j=reads.partial_sums * device.digital.add_pj * 1e-12,
        crossbars=tiling.crossbars,
        area_mm2=tiling.crossbars * area_per_crossbar_mm2(device),
    )


def program(tiling: Tiling, device: Device) -> Cost:
    """Writing a mapped matrix: every crossbar in parallel, row after row, verify rounds included."""
    xbar = device.crossbar
    rounds = xbar.write_verify_iterations
    latency = min(tiling.rows, xbar.rows) * xbar.write_latency_ns_per_row * rounds * 1e-9
    cell_writes = tiling.cells * tiling.replicas * rounds
    return Cost(
        latency_s=latency,
        write_latency_s=latency,
        write_j=cell_writes * xbar.write_energy_pj_per_cell * 1e-12,
        cell_writes=cell_writes,
    )


@register_formula(Gemm)
def price_gemm(op: Gemm, device: Device, options: Options) -> Cost:
    """Each group on its own crossbars; replicas split the vectors."""
    tiling = tile_matrix(op.rows, op.cols, device, replicas=min(options.replicas, op.vectors))
    groups = crossbar_pass(tiling, op.vectors, device).side_by_side(op.groups)
    return groups + move(op.in_elements, op.out_elements, device) + Cost(macs=op.macs)


@register_formula(Recurrence)
def price_recurrence(op: Recurrence, device: Device, options: Options) -> Cost:
    """`steps` dependent steps, each one crossbar read of [x_t; h_(t-1)] followed by the gates.

    W_ih and W_hh are stacked into one (input + hidden) x (gates x hidden)
    matrix, the usual crossbar LSTM mapping: one read per step, and never more
    ADC conversions than two separate matrices. The hidden and cell state stay
    in the IMA's registers; only x_t comes in and h_t goes out.
    """
    replicas = min(options.replicas, op.batch)
    stacked = tile_matrix(op.input_size + op.hidden_size, op.gates * op.hidden_size, device, replicas=replicas)
    gates = run_on_lanes(lane_work(f"{op.cell}_cell", op.batch * op.hidden_size), vector_lanes(device), device)
    step = crossbar_pass(stacked, op.batch, device) + gates
    return step.repeat(op.steps) + move(op.in_elements, op.out_elements, device) + Cost(macs=op.macs)


@register_formula(Product)
def price_product(op: Product, device: Device, options: Options) -> Cost:
    by_policy = _product_written if options.policy == "write" else _product_digital
    return by_policy(op, device) + move(op.in_elements, op.out_elements, device) + Cost(macs=op.macs)


def _product_written(op: Product, device: Device) -> Cost:
    """Program the (k x n) operand, then stream the m rows of the other; each instance on its own crossbars."""
    tiling = tile_matrix(op.k, op.n, device, bits=device.precision.input_bits)
    one = program(tiling, device) + crossbar_pass(tiling, op.m, device)
    return replace(one, crossbars=0, write_crossbars=tiling.crossbars).side_by_side(op.batch)


def _product_digital(op: Product, device: Device) -> Cost:
    """Digital MAC lanes, one MAC per lane per clock; operands read once from SRAM, outputs written once."""
    lanes = mac_lanes(device)
    if lanes <= 0:
        raise ValueError(f"{device.name}: policy 'digital' needs digital.mac_lanes_per_tile > 0")
    cycles = math.ceil(op.macs / lanes)
    mac_pj = op.macs * (device.digital.mul_pj + device.digital.add_pj)
    sram_pj = (op.in_elements + op.out_elements) * device.precision.input_bits * device.buffers.sram_pj_per_bit
    return Cost(latency_s=cycles / (device.digital.clock_mhz * 1e6), digital_j=(mac_pj + sram_pj) * 1e-12)


@register_formula(Nonlinear)
def price_nonlinear(op: Nonlinear, device: Device, options: Options) -> Cost:
    lanes = run_on_lanes(lane_work(op.fn, op.elements), vector_lanes(device), device)
    return lanes + move(op.in_elements, op.out_elements, device)


@register_formula(Elementwise)
def price_elementwise(op: Elementwise, device: Device, options: Options) -> Cost:
    lanes = run_on_lanes(lane_work(op.fn, op.elements), vector_lanes(device), device)
    return lanes + move(op.in_elements, op.out_elements, device)
