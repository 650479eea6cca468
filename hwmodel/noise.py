"""A matrix product computed the way the crossbar computes it, with the device's non-idealities (`Device.noise`).

Two phases, as on the device: `program_matrix` quantises a matrix to
fixed point, splits it into cell levels and places them on crossbar row tiles
(programming noise, stuck cells and drift to the read time are drawn here,
once per programming); `read_matrix` streams inputs through it (DAC digit
planes, per-read noise, one ADC conversion per column, row tile and plane,
then the digital shift-and-add). Weights are programmed once per Monte-Carlo
seed; an operand written under the `write` policy is programmed per product.
Conductances are in units of one cell level (the top level is 2^bits_per_cell - 1).

Published ReRAM values for `Device.noise` (presets default to the ideal device):
programming sigma about 2.8 % of G_max at G_max and read noise about 1 %
(Wan et al., Nature 2022, as fitted in aihwkit's ReRamWan2022NoiseModel);
see docs/noise_model.md for the list and its caveats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from hwmodel.device import Device
from hwmodel.encoding import Cells, adc_codes, adc_step, largest_sum, quantise, to_cells, to_planes
from hwmodel.mapping import Tiling, tile_matrix


@dataclass(frozen=True)
class Programmed:
    """A batch of (N x K) matrices on crossbars, as read at one time after programming."""

    conductance: torch.Tensor  # (B, A, S, N, R, rows) conductances, K padded to R row tiles (a lone tile keeps only K rows)
    compensation: torch.Tensor  # (B, R, N) the drift-compensation factor of the crossbar holding each column
    cells: Cells  # the target levels and how to weigh them
    scale: torch.Tensor  # (B, 1, 1) value of one integer step
    tiling: Tiling


def program_matrix(weight: torch.Tensor, device: Device, generator: torch.Generator, *, time_s: float = 0.0) -> Programmed:
    """Program `weight` (B, N, K), one matrix per leading index, as the product x @ weight.T will read it.

    Each matrix is quantised to precision.weight_bits with its own abs-max
    scale. Drawn per cell: stuck-at faults, then relative programming noise
    on the cells that are not stuck, then drift from drift_t0_s to `time_s`.
    """
    bits = device.precision.weight_bits
    integers, scale = quantise(weight, bits, dims=(-2, -1))
    cells = to_cells(integers, bits, device)  # (B, A, S, N, K)
    tiling = tile_matrix(weight.shape[-1], weight.shape[-2], device, bits=bits)
    rows = device.crossbar.rows if tiling.row_tiles > 1 else weight.shape[-1]  # a lone tile's unused rows add nothing to a sum
    target = _row_tiles(cells.levels, tiling.row_tiles, rows)  # (B, A, S, N, R, rows)
    programmed = _stick(_program(target, device, generator), device, generator, cells.level_count - 1)
    drifted = _drift(programmed, device, generator, time_s)
    compensation = _compensation(programmed, drifted, device, tiling)
    return Programmed(drifted, compensation, cells, scale, tiling)


def stored_matrix(programmed: Programmed, columns: int) -> torch.Tensor:
    """The (B, N, `columns`) values the crossbars hold: each cell's conductance weighed back through its slice, array
    sign and crossbar's drift compensation, less the offset, times the scale. What a read with exact inputs and
    converters multiplies by: programming noise, stuck cells, drift and fixed point, but no read noise or ADC."""
    g = programmed.conductance  # (B, A, S, N, R, rows)
    values = torch.einsum("basnrk,as->bnrk", g, programmed.cells.slice_weights) * programmed.compensation.transpose(1, 2)[..., None]
    return (values.flatten(-2)[..., :columns] - programmed.cells.offset) * programmed.scale


def read_matrix(programmed: Programmed, inputs: torch.Tensor, device: Device, generator: torch.Generator) -> torch.Tensor:
    """x @ weight.T for `inputs` (B, M, K) through the programmed crossbars, in float64.

    Each input vector is quantised to precision.input_bits with its own
    abs-max scale and fed as DAC digit planes; every (plane, row tile,
    column) sum gets read noise, is converted by the ADC, scaled by its
    crossbar's drift compensation and shifted and added digitally. Vectors
    go through in chunks that keep the per-read sums near _CHUNK_SUMS values;
    when no conversion can change a sum they are all read in one product instead.
    """
    bits = device.precision.input_bits
    integers, scale = quantise(inputs, bits, dims=(-1,))
    if _converts_exactly(programmed, device):
        merged = _read_at_once(programmed, integers)
    else:
        per_vector = programmed.conductance[0].numel() // programmed.conductance.shape[-1] * (bits + 1)
        chunk = max(1, _CHUNK_SUMS // per_vector)
        merged = torch.cat([_read_chunk(programmed, part, device, generator) for part in integers.split(chunk, dim=1)], dim=1)
    offset = programmed.cells.offset * integers.sum(dim=-1, keepdim=True)  # digital, from the exact inputs
    return (merged - offset) * scale * programmed.scale


_CHUNK_SUMS = 2**24
"""Column sums held at once (float64): about 128 MB."""


def _converts_exactly(programmed: Programmed, device: Device) -> bool:
    """Whether every column sum is an integer the ADC converts unchanged: no read noise, integer conductances
    (no programming noise or drift; stuck cells are whole levels), an LSB dividing 1 and a range covering every sum."""
    g = programmed.conductance
    _, step = adc_step(device)
    return device.noise.read_sigma == 0 and step <= 1 and device.noise.adc_range >= 1 and torch.equal(g, g.round())


def _read_at_once(programmed: Programmed, integers: torch.Tensor) -> torch.Tensor:
    """`_read_chunk` for every vector when conversion is exact: by linearity the digit planes and slices merge
    before the sum, so each row tile is one product with its summed cells (integers in float64: bit for bit)."""
    g = programmed.conductance  # (B, A, S, N, R, rows)
    matrix = torch.einsum("basnrk,as->brkn", g, programmed.cells.slice_weights)  # (B, R, rows, N)
    tiles = _row_tiles(integers, g.shape[-2], g.shape[-1]).transpose(1, 2)  # (B, R, M, rows)
    return ((tiles @ matrix) * programmed.compensation[:, :, None, :]).sum(dim=1)  # (B, M, N)


def _read_chunk(programmed: Programmed, integers: torch.Tensor, device: Device, generator: torch.Generator) -> torch.Tensor:
    """The shift-and-added, drift-compensated ADC outputs for integer inputs (B, M, K): (B, M, N).

    Column sums, their conversion and the merge of a read's cell slices run in `_read_dtype`; the
    shift-and-add over digit planes in float64.
    """
    planes = to_planes(integers, device.precision.input_bits, device)
    g = programmed.conductance
    batch, arrays, slices, columns, tiles, rows = g.shape
    dtype = _read_dtype(programmed.cells, device)
    digits = _row_tiles(planes.digits, tiles, rows)  # (P, B, M, R, rows)
    count, _, vectors = digits.shape[:3]
    digits = digits.permute(1, 3, 0, 2, 4).reshape(batch, tiles, count * vectors, rows).to(dtype)
    matrix = g.permute(0, 4, 5, 3, 1, 2).reshape(batch, tiles, rows, columns * arrays * slices).to(dtype)
    sums = digits @ matrix  # (B, R, P * M, N * A * S): one column sum per read
    if device.noise.read_sigma > 0:
        spread = (digits.square() @ matrix.square()).sqrt_().mul_(device.noise.read_sigma)
        sums += spread.mul_(torch.randn(sums.shape, generator=generator, dtype=dtype))
    codes = adc_codes(sums, device).view(batch, tiles, count, vectors, columns, arrays * slices)
    merged = (codes @ programmed.cells.slice_weights.flatten().to(dtype)).to(torch.float64)  # (B, R, P, M, N)
    weights = planes.weights * adc_step(device)[1]
    return torch.einsum("brpmn,p,brn->bmn", merged, weights, programmed.compensation)


def _read_dtype(cells: Cells, device: Device) -> torch.dtype:
    """float32 when it holds exactly every integer a read can produce (a noise-free column sum, and a code merged over
    the value's slices, both below 2^24), else float64. Sums with noise are fractional in either; float32 rounds them
    to 1e-7 of their size, far below any noise modelled, at half the cost."""
    merged = (2**device.adc.bits - 1) * float(cells.slice_weights.abs().sum())
    return torch.float32 if max(largest_sum(device), merged) < 2**24 else torch.float64


def noisy_matmul(
    inputs: torch.Tensor, weight: torch.Tensor, device: Device, generator: torch.Generator, *, time_s: float = 0.0
) -> torch.Tensor:
    """`torch.nn.functional.linear(inputs, weight)` (no bias) as the device computes it, freshly programmed.

    `weight` is (N, K), or (*batch, N, K) with `inputs` (*batch, M, K) for a
    batch of written operands (q @ k^T is `noisy_matmul(q, k, ...)`). No
    gradient flows: the device's quantisers have none. An ideal device
    (`noise.ideal`) returns torch's own product, bit for bit.

    Example:
        >>> from hwmodel import get_device
        >>> device = get_device("isaac", {"adc.bits": 16})
        >>> x, w = torch.randn(3, 8), torch.randn(4, 8)
        >>> y = noisy_matmul(x, w, device, torch.Generator().manual_seed(0))
        >>> bool(torch.allclose(y, x @ w.T, atol=1e-3))
        True
    """
    with torch.no_grad():
        if device.noise.ideal:
            return torch.nn.functional.linear(inputs, weight) if weight.dim() == 2 else inputs @ weight.transpose(-1, -2)
        batched = weight.dim() > 2
        lead = weight.shape[:-2] if batched else ()
        matrices = weight.reshape(-1, *weight.shape[-2:])
        vectors = inputs.reshape(matrices.shape[0], -1, inputs.shape[-1])
        programmed = program_matrix(matrices, device, generator, time_s=time_s)
        out = read_matrix(programmed, vectors, device, generator)
        shape = (*lead, *inputs.shape[len(lead) : -1], weight.shape[-2])
        return out.reshape(shape).to(inputs.dtype)


def _row_tiles(values: torch.Tensor, tiles: int, rows: int) -> torch.Tensor:
    """(..., K) zero-padded to tiles x rows and split: (..., tiles, rows)."""
    padded = torch.nn.functional.pad(values, (0, tiles * rows - values.shape[-1]))
    return padded.view(*values.shape[:-1], tiles, rows)


def _program(target: torch.Tensor, device: Device, generator: torch.Generator) -> torch.Tensor:
    sigma = device.noise.programming_sigma
    if sigma == 0:
        return target
    noise = torch.randn(target.shape, generator=generator, dtype=target.dtype)
    return (target * (1 + sigma * noise)).clamp_min(0.0)  # a conductance is never negative


def _stick(conductance: torch.Tensor, device: Device, generator: torch.Generator, top: int) -> torch.Tensor:
    """Stuck cells ignore programming: OFF with probability stuck_off_rate, else ON with stuck_on_rate."""
    off, on = device.noise.stuck_off_rate, device.noise.stuck_on_rate
    if off == 0 and on == 0:
        return conductance
    draw = torch.rand(conductance.shape, generator=generator, dtype=conductance.dtype)
    stuck = torch.where(draw < off, 0.0, float(top))
    return torch.where(draw < off + on, stuck, conductance)


def _drift(conductance: torch.Tensor, device: Device, generator: torch.Generator, time_s: float) -> torch.Tensor:
    """G(t) = G(t0) (t / t0)^-nu, nu drawn per cell; no drift before t0."""
    noise = device.noise
    elapsed = math.log(max(time_s, noise.drift_t0_s) / noise.drift_t0_s)
    if elapsed == 0 or (noise.drift_nu == 0 and noise.drift_nu_sigma == 0):
        return conductance
    nu = noise.drift_nu + noise.drift_nu_sigma * torch.randn(conductance.shape, generator=generator, dtype=conductance.dtype)
    return conductance * torch.exp(-nu * elapsed)


def _compensation(programmed: torch.Tensor, drifted: torch.Tensor, device: Device, tiling: Tiling) -> torch.Tensor:
    """(B, R, N): per crossbar, summed conductance at t0 over summed conductance now (1 without compensation).

    A crossbar is one row tile by one column tile of `per_crossbar` values
    (all their cells), as `hwmodel.mapping.tile_matrix` places them.
    """
    batch, _, _, columns, tiles, _ = programmed.shape
    if not device.noise.drift_compensation:
        return torch.ones(batch, tiles, columns, dtype=programmed.dtype)
    per_crossbar = max(1, device.crossbar.cols // tiling.value_slices)  # values per crossbar, as tile_matrix has it
    groups = torch.arange(columns) // per_crossbar  # the column tile of each value
    before, after = (_per_crossbar(g, groups, tiling.col_tiles) for g in (programmed, drifted))
    factor = before / after.clamp_min(torch.finfo(after.dtype).tiny)  # (B, R, column tiles)
    return factor[..., groups]


def _per_crossbar(conductance: torch.Tensor, groups: torch.Tensor, count: int) -> torch.Tensor:
    per_column = conductance.sum(dim=(1, 2, 5)).transpose(1, 2)  # (B, R, N)
    totals = per_column.new_zeros(*per_column.shape[:2], count)
    return totals.index_add_(2, groups, per_column)
