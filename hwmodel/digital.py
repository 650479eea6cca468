"""Digital units: per-element recipes for nonlinearities, and the cost of running lane operations.

Nonlinearities run on the tiles' digital lanes (ISAAC's sigmoid units), one
multiply or add per lane per clock, priced with the device's add and multiply
energies (Horowitz, ISSCC 2014). The recipes below are our own operation
counts for fixed-point implementations; they are assumptions, stated here.
"""

from __future__ import annotations

import math

from hwmodel.cost import Cost
from hwmodel.device import Device

Work = tuple[int, int]  # (multiplies, adds); a compare counts as an add


def _plus(*parts: Work) -> Work:
    return sum(p[0] for p in parts), sum(p[1] for p in parts)


_MUL, _ADD = (1, 0), (0, 1)
_EXP = (4, 4)  # range reduction by ln 2 plus a degree-3 polynomial
_RECIPROCAL = (4, 2)  # two Newton-Raphson iterations from a table seed
_SQRT = (6, 3)  # inverse square root: three Newton-Raphson iterations of (2 mul + 1 add)
_SIGMOID = _plus(_EXP, _ADD, _RECIPROCAL)  # 1 / (1 + exp(-x))
_TANH = _plus(_SIGMOID, _MUL, _MUL, _ADD)  # 2 sigmoid(2x) - 1

RECIPES: dict[str, Work] = {
    "exp": _EXP,
    "sigmoid": _SIGMOID,
    "tanh": _TANH,
    "silu": _plus(_SIGMOID, _MUL),
    # tanh form: 0.5 x (1 + tanh(c (x + 0.044715 x^3))): x^3 (2), two scalings (2), tanh, +1, x *, 0.5 *
    "gelu": _plus(_MUL, _MUL, _MUL, _MUL, _ADD, _TANH, _ADD, _MUL, _MUL),
    "relu": _ADD,
    # per element: running max, subtract it, exp, running sum, scale by the row's reciprocal
    "softmax": _plus(_ADD, _ADD, _EXP, _ADD, _MUL),
    # per element: mean sum, subtract, square, variance sum, normalise, affine; per-row rsqrt amortised
    "layernorm": _plus(_ADD, _ADD, _MUL, _ADD, _MUL, _MUL, _ADD),
    "sqrt": _SQRT,
    "reciprocal": _RECIPROCAL,
    "add": _ADD,
    "mul": _MUL,
    "div": _plus(_RECIPROCAL, _MUL),
    "max": _ADD,
    "affine": _plus(_MUL, _ADD),
    # recurrent cells, per hidden unit per step: gate nonlinearities, then merging W_ih x + W_hh h per gate
    # and the state update (LSTM: c = f c + i g, h = o tanh(c); GRU: n = tanh(. + r (.)), h = (1 - z) n + z h)
    "lstm_cell": _plus(_SIGMOID, _SIGMOID, _SIGMOID, _TANH, _TANH, _ADD, _ADD, _ADD, _ADD, _MUL, _MUL, _ADD, _MUL),
    "gru_cell": _plus(_SIGMOID, _SIGMOID, _TANH, _ADD, _ADD, _ADD, _MUL, _MUL, _MUL, _ADD, _ADD),
    "rnn_cell": _plus(_TANH, _ADD),
}


def lane_work(fn: str, elements: int) -> Work:
    """Multiplies and adds of `fn` over `elements` elements."""
    muls, adds = RECIPES[fn]
    return muls * elements, adds * elements


def vector_lanes(device: Device) -> int:
    """Nonlinearity lanes of the chip: the tiles' sigmoid units."""
    return device.tile.sigmoid.count * device.chip.tiles


def mac_lanes(device: Device) -> int:
    """Digital MAC lanes of the chip (the `digital` policy)."""
    return device.digital.mac_lanes_per_tile * device.chip.tiles


def run_on_lanes(work: Work, lanes: int, device: Device) -> Cost:
    """`work` spread over `lanes` lanes, one operation per lane per clock."""
    muls, adds = work
    if lanes <= 0:
        raise ValueError(f"{device.name}: no digital lanes to run {muls + adds} operations on")
    cycles = math.ceil((muls + adds) / lanes)
    energy_pj = muls * device.digital.mul_pj + adds * device.digital.add_pj
    return Cost(latency_s=cycles / (device.digital.clock_mhz * 1e6), digital_j=energy_pj * 1e-12)
