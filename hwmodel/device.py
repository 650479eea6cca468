"""The ReRAM accelerator spec: a frozen pydantic tree, validated once, read by every pricing formula.

The hierarchy is ISAAC's (Shafiee et al., ISCA 2016): crossbars with their DACs,
sample-and-holds and ADCs form an IMA; IMAs with an activation buffer, a bus,
digital units and a share of a router form a tile; tiles plus off-chip links
form a chip. Units are in field names. Numbers live in `hwmodel.presets`.
"""

from __future__ import annotations

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

    @model_validator(mode="after")
    def _weight_fits_a_row(self) -> Device:
        row_bits = self.crossbar.cols * self.crossbar.bits_per_cell
        if row_bits < self.precision.weight_bits:
            raise ValueError(
                f"crossbar.cols={self.crossbar.cols} x crossbar.bits_per_cell={self.crossbar.bits_per_cell} "
                f"holds {row_bits} bits per row, fewer than precision.weight_bits={self.precision.weight_bits}: "
                "the crossbar is smaller than one weight's cells"
            )
        return self
