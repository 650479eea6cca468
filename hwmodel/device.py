"""The ReRAM accelerator spec: a frozen pydantic tree, validated once, read by every pricing formula.

The hierarchy is ISAAC's (Shafiee et al., ISCA 2016): crossbars with their DACs,
sample-and-holds and ADCs form an IMA; IMAs with an activation buffer, a bus,
digital units and a share of a router form a tile; tiles plus off-chip links
form a chip. Units are in field names. Numbers live in `hwmodel.presets`.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Spec(BaseModel):
    """Frozen, refuses unknown keys; field docstrings become schema descriptions."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class Part(Spec):
    """A component priced by its power and area, `count` of them at one level of the hierarchy."""

    count: int = Field(1, ge=0)
    """Instances at this level."""
    power_mw: float = Field(ge=0)
    """Power of one instance when busy, mW."""
    area_mm2: float = Field(ge=0)
    """Area of one instance, mm²."""


class Crossbar(Spec):
    """One ReRAM array: geometry, analog read, and programming."""

    rows: int = Field(gt=0)
    """Wordlines, driven in parallel on a read."""
    cols: int = Field(gt=0)
    """Bitlines, each sensed by a sample-and-hold and converted by an ADC."""
    bits_per_cell: int = Field(ge=1, le=8)
    """Bits one cell stores; a weight of B bits spans ceil(B / bits_per_cell) columns."""
    area_mm2: float = Field(ge=0)
    """Area of one array, mm²."""
    read_latency_ns: float = Field(gt=0)
    """One analog read: rows driven, columns settled and sampled."""
    read_energy_fj_per_cell: float = Field(ge=0)
    """Energy one cell dissipates during one read, fJ."""
    write_latency_ns_per_row: float = Field(gt=0)
    """One programming pulse on one row (its cells in parallel), ns."""
    write_energy_pj_per_cell: float = Field(ge=0)
    """One programming pulse on one cell, pJ."""
    write_verify_iterations: int = Field(ge=1)
    """Pulse-and-verify rounds per row until the levels are set."""
    endurance_writes: float = Field(gt=0)
    """Programming cycles a cell survives."""
    signed_values: Literal["offset", "differential"] = "offset"
    """How a signed value sits in unsigned conductances: `offset` stores value + 2^(bits-1) in one set of cells and
    subtracts the offset digitally; `differential` stores the magnitude in a positive or a negative set of cells
    (a pair per value, twice the columns)."""


class Dac(Spec):
    """Row drivers; one per crossbar row."""

    bits: int = Field(ge=1, le=16)
    """Input bits applied per read cycle."""
    power_mw: float = Field(ge=0)
    """One DAC, mW."""
    area_mm2: float = Field(ge=0)
    """One DAC, mm²."""


class Adc(Spec):
    """Column converters, shared by the IMA's columns."""

    bits: int = Field(ge=1, le=16)
    """Resolution."""
    rate_gsps: float = Field(gt=0)
    """Conversions per nanosecond (GS/s) of one ADC."""
    power_mw: float = Field(ge=0)
    """One ADC at full rate, mW."""
    area_mm2: float = Field(ge=0)
    """One ADC, mm²."""


class Noise(Spec):
    """Analog non-idealities of a crossbar read, in units relative to the programmed conductance.

    The defaults are the ideal device. `hwmodel.noise` applies them; pricing ignores them.
    """

    programming_sigma: float = Field(0.0, ge=0, le=1)
    """Relative standard deviation of a cell's conductance after programming, drawn once per programming."""
    read_sigma: float = Field(0.0, ge=0, le=1)
    """Relative standard deviation of a cell's conductance in one read, drawn afresh for every read cycle."""
    drift_nu: float = Field(0.0, ge=0, le=1)
    """Mean drift exponent: G(t) = G(t0) * (t / t0) ** -nu."""
    drift_nu_sigma: float = Field(0.0, ge=0, le=1)
    """Cell-to-cell standard deviation of the drift exponent."""
    drift_t0_s: float = Field(1.0, gt=0)
    """Time after programming at which conductances are as programmed, s; earlier reads see no drift."""
    drift_compensation: bool = False
    """Global drift compensation: each crossbar's outputs are scaled by one scalar, the ratio of its summed
    conductance at t0 to that at read time (aihwkit's GlobalDriftCompensation, one reading per crossbar)."""
    stuck_on_rate: float = Field(0.0, ge=0, le=1)
    """Fraction of cells stuck at the highest conductance level, whatever was programmed."""
    stuck_off_rate: float = Field(0.0, ge=0, le=1)
    """Fraction of cells stuck at zero conductance."""
    adc_range: float = Field(1.0, gt=0)
    """ADC full scale as a fraction of the largest column sum a read can produce; sums above it clip."""
    ideal: bool = False
    """No quantisation, conversion or noise at all: products are computed in floating point as torch computes them,
    so a model run through the device equals the clean model bit for bit. Every other field must keep its default."""

    def draws(self, time_s: float) -> bool:
        """Whether a read at `time_s` depends on random draws; when not, every Monte-Carlo seed gives the same device."""
        drifts = time_s > self.drift_t0_s and self.drift_nu_sigma > 0
        return drifts or any(rate > 0 for rate in (self.programming_sigma, self.read_sigma, self.stuck_on_rate, self.stuck_off_rate))

    @model_validator(mode="after")
    def _ideal_has_no_non_idealities(self) -> Noise:
        changed = [name for name, field in type(self).model_fields.items() if name != "ideal" and getattr(self, name) != field.default]
        if self.ideal and changed:
            raise ValueError(f"an ideal device has no non-idealities, but this one sets {', '.join(changed)}")
        return self

    @model_validator(mode="after")
    def _stuck_rates_are_a_fraction(self) -> Noise:
        if self.stuck_on_rate + self.stuck_off_rate > 1:
            raise ValueError(
                f"stuck_on_rate={self.stuck_on_rate} + stuck_off_rate={self.stuck_off_rate} is more than all the cells"
            )
        return self


class Ima(Spec):
    """In-situ multiply-accumulate unit: crossbars and their mixed-signal periphery."""

    crossbars: int = Field(gt=0)
    """Crossbars per IMA."""
    adcs: int = Field(gt=0)
    """ADCs per IMA, shared by all its columns."""
    sample_hold: Part
    """One per crossbar column (count is ignored: crossbars x cols)."""
    shift_add: Part
    """Merge ADC outputs across input and weight bit slices."""
    input_register: Part
    """Holds the input vector feeding the DACs."""
    output_register: Part
    """Accumulates shift-and-add results."""


class Tile(Spec):
    """IMAs sharing an activation buffer, a bus, a router and digital units."""

    imas: int = Field(gt=0)
    """IMAs per tile."""
    buffer: Part
    """Activation buffer (eDRAM in ISAAC)."""
    bus: Part
    """Buffer-to-IMA bus."""
    router: Part
    """One router; its power and area are split over `router_shared_by` tiles."""
    router_shared_by: int = Field(gt=0)
    """Tiles sharing one router."""
    sigmoid: Part
    """Digital nonlinearity units; `count` of them are this tile's vector lanes."""
    shift_add: Part
    """Tile-level partial-sum merge."""
    max_pool: Part
    """Pooling unit."""
    output_register: Part
    """Tile output register."""


class Chip(Spec):
    """Tiles and off-chip links."""

    tiles: int = Field(gt=0)
    """Tiles per chip."""
    io: Part
    """Off-chip links (HyperTransport in ISAAC)."""


class Buffers(Spec):
    """Energy per bit of moving activations: buffers and interconnect."""

    tile_buffer_pj_per_bit: float = Field(ge=0)
    """One bit read from or written to the tile activation buffer (eDRAM or SRAM), pJ."""
    sram_pj_per_bit: float = Field(ge=0)
    """One bit read from the digital units' operand SRAM (the `digital` policy), pJ."""
    bus_pj_per_bit: float = Field(ge=0)
    """One bit over the buffer-to-IMA bus, pJ."""
    router_pj_per_bit: float = Field(ge=0)
    """One bit through one router hop, pJ."""


class Digital(Spec):
    """Digital units for nonlinearities, elementwise ops and (the `digital` policy) activation products."""

    clock_mhz: float = Field(gt=0)
    """Clock of the digital units."""
    add_pj: float = Field(ge=0)
    """One add (or compare) at the activation precision, pJ."""
    mul_pj: float = Field(ge=0)
    """One multiply at the activation precision, pJ."""
    mac_lanes_per_tile: int = Field(ge=0)
    """Digital MAC lanes per tile used by the `digital` policy."""
    mac_area_mm2: float = Field(ge=0)
    """Area of one MAC lane, mm²."""


class Precision(Spec):
    """Fixed-point widths of stored weights and streamed activations."""

    weight_bits: int = Field(ge=1, le=32)
    """Bits per weight, spread over ceil(weight_bits / bits_per_cell) columns."""
    input_bits: int = Field(ge=1, le=32)
    """Bits per activation, streamed ceil(input_bits / dac.bits) cycles per vector."""


class Device(Spec):
    """A whole accelerator. Build it from a preset: `hwmodel.get_device("isaac", overrides)`."""

    name: str
    """Preset name, for reports."""
    crossbar: Crossbar
    dac: Dac
    adc: Adc
    ima: Ima
    tile: Tile
    chip: Chip
    buffers: Buffers
    digital: Digital
    precision: Precision
    noise: Noise = Noise()

    @model_validator(mode="after")
    def _weight_fits_a_row(self) -> Device:
        cells = value_cells(self.precision.weight_bits, self.crossbar.bits_per_cell, self.crossbar.signed_values)
        if self.crossbar.cols < cells:
            raise ValueError(
                f"crossbar.cols={self.crossbar.cols} is fewer than the {cells} cells one weight of "
                f"precision.weight_bits={self.precision.weight_bits} takes at crossbar.bits_per_cell="
                f"{self.crossbar.bits_per_cell} ({self.crossbar.signed_values}): the crossbar is smaller than one weight's cells"
            )
        return self


def value_cells(bits: int, bits_per_cell: int, signed_values: str) -> int:
    """Columns one signed `bits`-bit value takes: its offset code, or its (bits - 1)-bit magnitude twice."""
    if signed_values == "differential":
        return 2 * math.ceil(max(bits - 1, 1) / bits_per_cell)
    return math.ceil(bits / bits_per_cell)
