"""Fixed-point values as a crossbar holds and reads them: weights as cell levels, inputs as DAC digit planes.

Column counts come from `hwmodel.budget.weight_slices` and read cycles from
`input_slices`, the numbers pricing uses. Everything is float64 holding
integers, so the noise-free sums are exact (they stay far below 2**53).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from hwmodel.budget import input_slices, weight_slices
from hwmodel.device import Device


def quantise(values: torch.Tensor, bits: int, dims: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric fixed point: integers in [-(2^(bits-1) - 1), 2^(bits-1) - 1] and the scale over `dims` (abs max)."""
    top = 2 ** (bits - 1) - 1
    scale = values.abs().amax(dim=dims, keepdim=True).to(torch.float64).clamp_min(torch.finfo(torch.float64).tiny) / top
    return torch.round(values.to(torch.float64) / scale).clamp(-top, top), scale


@dataclass(frozen=True)
class Cells:
    """A signed integer matrix as cell levels: value = sum over arrays a, slices j of sign[a] * L^j * levels[a, j] - offset."""

    levels: torch.Tensor  # (..., A, S, N, K) levels in [0, L - 1]
    signs: tuple[float, ...]  # (A,) +1, or +1 and -1 for a differential pair
    offset: float  # subtracted digitally times the input sum
    level_count: int  # L = 2 ** bits_per_cell

    @property
    def slice_weights(self) -> torch.Tensor:
        """(A, S) the digital weight of each array's slice: sign x L^j."""
        slices = self.levels.shape[-3]
        powers = torch.tensor([float(self.level_count) ** j for j in range(slices)], dtype=torch.float64)
        return torch.tensor(self.signs, dtype=torch.float64)[:, None] * powers


def to_cells(integers: torch.Tensor, bits: int, device: Device) -> Cells:
    """Cells of an (..., N, K) integer matrix of `bits`-bit values, in the crossbar's signed encoding.

    `offset` stores value + 2^(bits-1) as one unsigned code (ISAAC); `differential` stores
    max(value, 0) and max(-value, 0) as two codes of bits - 1 bits. Either way the columns
    per value equal `weight_slices(device, bits)`.
    """
    xbar = device.crossbar
    levels = 2**xbar.bits_per_cell
    whole = integers.to(torch.int64)
    if xbar.signed_values == "differential":
        codes, signs, offset = torch.stack([whole.clamp_min(0), (-whole).clamp_min(0)], dim=-3), (1.0, -1.0), 0.0
    else:
        codes, signs, offset = (whole + 2 ** (bits - 1)).unsqueeze(-3), (1.0,), float(2 ** (bits - 1))
    slices = weight_slices(device, bits) // len(signs)
    shifts = torch.arange(slices, dtype=torch.int64) * xbar.bits_per_cell
    cells = (codes.unsqueeze(-3) >> shifts[:, None, None]) & (levels - 1)  # (..., A, S, N, K)
    return Cells(cells.to(torch.float64), signs, offset, levels)


@dataclass(frozen=True)
class Planes:
    """An integer input vector as unsigned DAC digits: x = sum over planes p of weights[p] * digits[p]."""

    digits: torch.Tensor  # (P, ..., K) digits in [0, 2^dac.bits - 1]
    weights: torch.Tensor  # (P,) the shift-and-add weight of each plane, negative for the sign plane


def to_planes(integers: torch.Tensor, bits: int, device: Device) -> Planes:
    """Two's complement, `input_slices(device, bits)` digits of dac.bits from the least significant.

    The top digit is signed; its negative part is read as a plane of its own
    and subtracted by the shift-and-add. With 1-bit DACs (ISAAC) that part is
    the sign bit and the top digit has no positive part, so the planes are
    exactly the `input_slices` read cycles pricing counts; with wider DACs a
    top digit of both signs costs one read more than priced.
    """
    dac = device.dac.bits
    count = input_slices(device, bits)
    top_width = bits - dac * (count - 1)
    unsigned = torch.remainder(integers.to(torch.int64), 2**bits)
    digits = (unsigned.unsqueeze(0) >> (torch.arange(count) * dac).view(-1, *[1] * integers.dim())) & (2**dac - 1)
    negative = (integers < 0).to(torch.int64)
    top = digits[-1] - negative * 2**top_width  # the signed top digit
    planes = [digits[:-1], (-top).clamp_min(0).unsqueeze(0)]
    weights = [2.0 ** (dac * p) for p in range(count - 1)] + [-(2.0 ** (dac * (count - 1)))]
    if top_width > 1:  # a 1-bit top digit is 0 or -1: it has no positive part
        planes.append(top.clamp_min(0).unsqueeze(0))
        weights.append(2.0 ** (dac * (count - 1)))
    return Planes(torch.cat(planes).to(torch.float64), torch.tensor(weights, dtype=torch.float64))


def largest_sum(device: Device) -> int:
    """The largest noise-free column sum of one read: every row at the top DAC digit on a top-level cell."""
    return device.crossbar.rows * (2**device.dac.bits - 1) * (2**device.crossbar.bits_per_cell - 1)


def adc_step(device: Device) -> tuple[float, float]:
    """(full scale, LSB) of a column conversion, in cell levels x DAC digits.

    The full scale is `noise.adc_range` times the largest sum a read can
    produce (every row at the top digit on a top-level cell). The LSB is the
    smallest power of two for which the ADC's 2^bits - 1 steps reach the full
    scale, so an ADC wide enough for every noise-free sum converts it exactly.
    """
    full_scale = device.noise.adc_range * largest_sum(device)
    return full_scale, 2.0 ** math.ceil(math.log2(full_scale / (2**device.adc.bits - 1)))


def convert(sums: torch.Tensor, device: Device) -> torch.Tensor:
    """ADC: each column sum clipped to [0, full scale], then rounded to the nearest LSB."""
    return adc_codes(sums.clone(), device) * adc_step(device)[1]


def adc_codes(sums: torch.Tensor, device: Device) -> torch.Tensor:
    """`convert` in LSBs, computed in place on `sums`: integers in [0, 2^adc.bits - 1] (the step is a power of two,
    so dividing by it is exact)."""
    full_scale, step = adc_step(device)
    return sums.clamp_(0.0, full_scale).div_(step).round_()
