"""Power and area of an IMA, a tile and a chip, summed from the device's component parameters.

These are the figures ISAAC publishes (IMA 24.08 mW, tile 330 mW, chip 65.8 W,
41.3 TOPS); the tests recompute them from the per-component numbers. The
read cycle and peak throughput live here too, since they set the rates that
turn component power into energy per action (`hwmodel.actions`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwmodel.device import Device, Part, value_cells


@dataclass(frozen=True)
class Budget:
    """Power (mW) and area (mm²) of a group of components."""

    power_mw: float = 0.0
    area_mm2: float = 0.0

    def __add__(self, other: Budget) -> Budget:
        return Budget(self.power_mw + other.power_mw, self.area_mm2 + other.area_mm2)

    def __mul__(self, count: float) -> Budget:
        return Budget(self.power_mw * count, self.area_mm2 * count)


def part(component: Part, count: float | None = None) -> Budget:
    """`count` instances of `component` (its own count when not given)."""
    n = component.count if count is None else count
    return Budget(component.power_mw * n, component.area_mm2 * n)


def crossbar_power_mw(device: Device) -> float:
    """One array reading every cycle: fJ per cell x cells / ns per read = uW, hence the 1e-3."""
    xbar = device.crossbar
    return xbar.read_energy_fj_per_cell * xbar.rows * xbar.cols / xbar.read_latency_ns * 1e-3


def ima_budget(device: Device) -> Budget:
    """Crossbars, one DAC per row and one sample-and-hold per column of each, ADCs, shift-add, registers."""
    ima, xbar = device.ima, device.crossbar
    crossbars = Budget(crossbar_power_mw(device), xbar.area_mm2) * ima.crossbars
    dacs = Budget(device.dac.power_mw, device.dac.area_mm2) * (ima.crossbars * xbar.rows)
    holds = part(ima.sample_hold, ima.crossbars * xbar.cols)
    adcs = Budget(device.adc.power_mw, device.adc.area_mm2) * ima.adcs
    return crossbars + dacs + holds + adcs + part(ima.shift_add) + part(ima.input_register) + part(ima.output_register)


def tile_periphery(device: Device) -> Budget:
    """Everything in a tile but its IMAs; the router is split over the tiles sharing it."""
    tile = device.tile
    router = part(tile.router) * (1 / tile.router_shared_by)
    shared = part(tile.buffer) + part(tile.bus) + part(tile.sigmoid) + part(tile.shift_add)
    return shared + part(tile.max_pool) + part(tile.output_register) + router


def tile_budget(device: Device) -> Budget:
    return ima_budget(device) * device.tile.imas + tile_periphery(device)


def chip_budget(device: Device) -> Budget:
    return tile_budget(device) * device.chip.tiles + part(device.chip.io)


def crossbars_per_chip(device: Device) -> int:
    return device.chip.tiles * device.tile.imas * device.ima.crossbars


def cycle_ns(device: Device) -> float:
    """One read cycle: the array read, or the ADCs converting every column of the IMA, whichever is slower."""
    columns = device.ima.crossbars * device.crossbar.cols
    return max(device.crossbar.read_latency_ns, columns / (device.ima.adcs * device.adc.rate_gsps))


def input_slices(device: Device, bits: int | None = None) -> int:
    """Read cycles per input vector: `bits` (default the input precision) fed dac.bits at a time."""
    return math.ceil((bits or device.precision.input_bits) / device.dac.bits)


def weight_slices(device: Device, bits: int | None = None) -> int:
    """Columns per value: `bits` (default the weight precision) stored bits_per_cell per cell, signed as the crossbar says."""
    xbar = device.crossbar
    return value_cells(bits or device.precision.weight_bits, xbar.bits_per_cell, xbar.signed_values)


def peak_ops_per_s(device: Device) -> float:
    """Every crossbar of the chip busy: 2 ops per MAC, rows x weights-per-row MACs per input vector."""
    weights_per_row = device.crossbar.cols // weight_slices(device)
    macs_per_vector = device.crossbar.rows * weights_per_row
    seconds_per_vector = input_slices(device) * cycle_ns(device) * 1e-9
    return 2 * crossbars_per_chip(device) * macs_per_vector / seconds_per_vector


def area_per_crossbar_mm2(device: Device) -> float:
    """A crossbar's share of its IMA and tile: what mapping one more crossbar costs in silicon."""
    per_tile = device.tile.imas * device.ima.crossbars
    return ima_budget(device).area_mm2 / device.ima.crossbars + tile_periphery(device).area_mm2 / per_tile
