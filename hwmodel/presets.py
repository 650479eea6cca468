"""Device presets (every number with its source) and recipe overrides.

"ISAAC" in a comment means Shafiee et al., ISCA 2016, as transcribed in
shared/hwmodel-anchors.md §1. Its component table lists totals per count; the
per-unit value is written here as that total divided by the count, so the
published IMA, tile and chip totals are recomputed by `hwmodel.budget`, never stored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from difflib import get_close_matches
from typing import Any

from hwmodel.device import Adc, Buffers, Chip, Crossbar, Dac, Device, Digital, Ima, Noise, Part, Precision, Spec, Tile

# Programming parameters shared by both presets (hwmodel-anchors.md §2; recalled
# from device literature and PUMA, not checked here). We take a 100 ns pulse per
# row (the top of the 10-100 ns range) and 1.2 pJ per cell (inside 0.6-2 pJ) with
# a single verify round, because that reproduces the one array-level anchor:
# 128 rows x 100 ns = 12.8 us and 16384 cells x 1.2 pJ = 19.7 nJ per 128x128
# reprogram (anchor: about 10 us and 20 nJ). Multi-level cells usually need
# verify loops (about 1 us per row): set write_verify_iterations to 10 for that.
_WRITE = {
    "write_latency_ns_per_row": 100.0,
    "write_energy_pj_per_cell": 1.2,
    "write_verify_iterations": 1,
    "endurance_writes": 1e6,  # anchors §2: 1e6 typical (1e5-1e12 across devices)
}

# Horowitz, "Computing's energy problem", ISSCC 2014, 45 nm: 8-bit add 0.03 pJ,
# 32-bit add 0.1 pJ, 8-bit multiply 0.2 pJ, 32-bit multiply 3.1 pJ. For 16-bit
# fixed point we interpolate adds linearly in width and scale the 8-bit
# multiplier quadratically (0.8 pJ; the 32-bit one scaled down gives 0.78).
_ADD16_PJ = 0.03 + (0.1 - 0.03) * (16 - 8) / (32 - 8)
_MUL16_PJ = 0.2 * (16 / 8) ** 2
_SRAM32KB_PJ_PER_BIT = 20 / 64  # Horowitz 2014: 64-bit read of a 32 KB SRAM, 20 pJ
_SRAM8KB_PJ_PER_BIT = 10 / 64  # Horowitz 2014: 64-bit read of an 8 KB SRAM, 10 pJ

# Digital MAC lanes exist only for the `digital` policy; ISAAC has none. Assumed:
# a 16-lane MAC vector unit per tile (PUMA-like vector unit; width is our choice)
# of 0.002 mm² per lane (our estimate for a 16-bit MAC at 32 nm, no source).
_MAC_LANES_PER_TILE = 16
_MAC_AREA_MM2 = 0.002


def isaac() -> Device:
    """ISAAC as published: 32 nm, 128x128 arrays of 2-bit cells, 1-bit DACs, 8-bit ADCs, 16-bit data."""
    return Device(
        name="isaac",
        crossbar=Crossbar(
            rows=128,  # ISAAC: 128 x 128 memristor crossbar
            cols=128,
            bits_per_cell=2,  # ISAAC: 2 bits per cell
            area_mm2=0.0002 / 8,  # ISAAC: 8 crossbars, 0.0002 mm²
            read_latency_ns=100.0,  # ISAAC: crossbar read cycle 100 ns
            # ISAAC: 8 crossbars draw 2.4 mW; one array over one 100 ns read of 128 x 128 cells.
            read_energy_fj_per_cell=2.4 / 8 * 100 / (128 * 128) * 1e3,
            # ISAAC stores weights with a bias of 2^15 and subtracts it digitally (its "signed arithmetic"
            # section, recalled, verify), so a 16-bit weight takes 8 cells, not a differential pair of them.
            signed_values="offset",
            **_WRITE,
        ),
        # ISAAC: 8 x 128 1-bit DACs, 4 mW, 0.00017 mm².
        dac=Dac(bits=1, power_mw=4 / (8 * 128), area_mm2=0.00017 / (8 * 128)),
        # ISAAC: 8 ADCs of 8 bits at 1.28 GS/s, 16 mW, 0.0096 mm² (hwcomponents-library uses 1.2 GS/s).
        adc=Adc(bits=8, rate_gsps=1.28, power_mw=16 / 8, area_mm2=0.0096 / 8),
        ima=Ima(
            crossbars=8,  # ISAAC
            adcs=8,  # ISAAC
            sample_hold=Part(power_mw=0.01 / (8 * 128), area_mm2=0.00004 / (8 * 128)),  # 8x128 S&H: 10 uW, 0.00004 mm²
            shift_add=Part(count=4, power_mw=0.2 / 4, area_mm2=0.00024 / 4),  # 4 S&A: 0.2 mW, 0.00024 mm²
            input_register=Part(power_mw=1.24, area_mm2=0.0021),  # 2 KB IR: 1.24 mW, 0.0021 mm²
            output_register=Part(power_mw=0.23, area_mm2=0.00077),  # 256 B OR: 0.23 mW, 0.00077 mm²
        ),
        tile=Tile(
            imas=12,  # ISAAC: 12 IMAs per tile
            buffer=Part(power_mw=20.7, area_mm2=0.083),  # 64 KB eDRAM: 20.7 mW, 0.083 mm²
            bus=Part(power_mw=7.0, area_mm2=0.090),  # eDRAM-to-IMA bus, 384 wires: 7 mW, 0.090 mm²
            router=Part(power_mw=42.0, area_mm2=0.151),  # router: 42 mW, 0.151 mm², shared by 4 tiles
            router_shared_by=4,
            sigmoid=Part(count=2, power_mw=0.52 / 2, area_mm2=0.0006 / 2),  # 2 sigmoid units: 0.52 mW, 0.0006 mm²
            shift_add=Part(power_mw=0.05, area_mm2=0.00006),  # 1 S&A: 0.05 mW, 0.00006 mm²
            max_pool=Part(power_mw=0.4, area_mm2=0.00024),  # 1 max pool: 0.4 mW, 0.00024 mm²
            output_register=Part(power_mw=1.68, area_mm2=0.0032),  # 3 KB OR: 1.68 mW, 0.0032 mm²
        ),
        # ISAAC: 168 tiles; HyperTransport, 4 links, 10.4 W, 22.88 mm².
        chip=Chip(tiles=168, io=Part(count=4, power_mw=10400 / 4, area_mm2=22.88 / 4)),
        buffers=Buffers(
            # hwcomponents-library isaac.py: eDRAM 20.45 pJ per 256-bit access (ISAAC eDRAM power x the time the
            # IMAs take to drain their input registers / accesses, derived there at 1.2 GS/s).
            tile_buffer_pj_per_bit=20.45 / 256,
            sram_pj_per_bit=_SRAM32KB_PJ_PER_BIT,
            bus_pj_per_bit=0.054,  # hwcomponents-library isaac.py: eDRAM bus 0.054 pJ per bit
            router_pj_per_bit=20.74 / 256,  # hwcomponents-library isaac.py: router 20.74 pJ per 256-bit flit
        ),
        digital=Digital(
            clock_mhz=1000.0,  # assumed 1 GHz: ISAAC gives no digital clock; NeuroSim's default clkFreq is 1e9
            add_pj=_ADD16_PJ,
            mul_pj=_MUL16_PJ,
            mac_lanes_per_tile=_MAC_LANES_PER_TILE,
            mac_area_mm2=_MAC_AREA_MM2,
        ),
        precision=Precision(weight_bits=16, input_bits=16),  # ISAAC: 16-bit fixed-point weights and inputs
        # ISAAC publishes no noise, drift or stuck-at figures: the ideal device. Published ReRAM values to
        # override with are listed, with their sources, in hwmodel.noise and docs/noise_model.md.
        noise=Noise(),
    )


def neurosim() -> Device:
    """NeuroSim-like: DNN+NeuroSim V1.3 array defaults (22 nm RRAM 1T1R) on ISAAC's hierarchy.

    Array, ADC sharing, precision and clock follow DNN+NeuroSim's Param.cpp and
    inference wrapper defaults; periphery not given there keeps ISAAC's 32 nm
    energy per action and area (not rescaled to 22 nm). Every driven row is
    assumed to carry a 1 (full input activity), so array energy is an upper bound.
    """
    base = isaac()
    # Param.cpp: readVoltage 0.5 V, readPulseWidth 10 ns; a cell's read energy is V^2 x G x t, G the mean of the
    # on and off conductances. V1.3's device (6 kOhm / 900 kOhm) would draw 343 mW per array, so we take the
    # 240 kOhm / 24 MOhm device of DNN+NeuroSim V2's Param.cpp (same read voltage and pulse): 5.3 fJ per cell.
    read_fj = 0.5**2 * (1 / 240e3 + 1 / 24e6) / 2 * 10e-9 * 1e15
    # Param.cpp: 1T1R cell 4F x 12F with featuresize 40 nm (22 nm node).
    array_mm2 = 128 * 128 * 4 * 12 * (40e-9) ** 2 * 1e6
    adc_pj = 0.99  # hwcomponents-library isaac.py: 5-bit SAR ADC, 0.99 pJ/conversion, 476.91 um² (32 nm scaling table)
    adc_gsps = 1.2  # same table's reference ADC rate (Kull et al., ISSCC 2013), assumed unchanged at 5 bits
    adcs = 8 * 128 // 8  # Param.cpp: numColMuxed 8, 8 columns share one ADC
    # ISAAC's periphery acts once per read cycle (DACs, sample-and-holds, input register) or once per
    # conversion (shift-and-add, output register); its power is scaled to these rates so that each action
    # costs what it costs in ISAAC.
    per_cycle = 100 / 10  # ISAAC's 100 ns cycle against NeuroSim's 10 ns read pulse
    per_conversion = adcs * adc_gsps / (8 * 1.28)  # conversions per ns of one IMA, against ISAAC's
    ima = base.ima
    return _with(
        base,
        name="neurosim",
        # Param.cpp: numRowSubArray = numColSubArray = 128, cellBit = 2 (the V1.3 Python wrapper defaults to 1).
        crossbar=_with(base.crossbar, area_mm2=array_mm2, read_latency_ns=10.0, read_energy_fj_per_cell=read_fj),
        dac=_with(base.dac, power_mw=base.dac.power_mw * per_cycle),  # Param.cpp: 1-bit inputs per cycle
        # Param.cpp: levelOutput 32, a 5-bit ADC.
        adc=Adc(bits=5, rate_gsps=adc_gsps, power_mw=adc_pj * adc_gsps, area_mm2=476.91e-6),
        ima=_with(
            ima,
            adcs=adcs,
            sample_hold=_scaled(ima.sample_hold, per_cycle),
            input_register=_scaled(ima.input_register, per_cycle),
            shift_add=_scaled(ima.shift_add, per_conversion),
            output_register=_scaled(ima.output_register, per_conversion),
        ),
        # Param.cpp: tileBufferType false (register-file buffers), priced as Horowitz's 8 KB SRAM; no eDRAM.
        buffers=_with(base.buffers, tile_buffer_pj_per_bit=_SRAM8KB_PJ_PER_BIT),
        # Param.cpp: clkFreq 1e9; Horowitz 2014: 8-bit add 0.03 pJ, 8-bit multiply 0.2 pJ.
        digital=_with(base.digital, clock_mhz=1000.0, add_pj=0.03, mul_pj=0.2),
        # NeuroSim V1.3 inference wrapper: --wl_weight 8 --wl_activate 8.
        precision=Precision(weight_bits=8, input_bits=8),
    )


def _scaled(component: Part, rate: float) -> Part:
    return _with(component, power_mw=component.power_mw * rate)


def _with(model: Spec, **changes: Any) -> Any:
    """A validated copy of `model` with `changes` (pydantic's model_copy skips validation)."""
    return type(model).model_validate({**dict(model), **changes})


PRESETS: dict[str, Callable[[], Device]] = {"isaac": isaac, "neurosim": neurosim}


def get_device(name: str, overrides: Mapping[str, Any] | None = None) -> Device:
    """Preset `name` with `overrides` applied and the result validated.

    Overrides use dotted field paths, as in a recipe's `hardware.overrides`;
    nested mappings work too. Unknown names and bad values raise
    `pydantic.ValidationError` naming the field.

    Example:
        >>> get_device("isaac", {"adc.bits": 6, "crossbar.rows": 256}).crossbar.rows
        256
    """
    if name not in PRESETS:
        close = get_close_matches(name, PRESETS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise KeyError(f"unknown device preset {name!r}; {hint}known: {', '.join(sorted(PRESETS))}")
    data = PRESETS[name]().model_dump()
    for key, value in (overrides or {}).items():
        _merge(data, key.split("."), value)
    return Device.model_validate(data)


def _merge(data: dict[str, Any], keys: list[str], value: Any) -> None:
    """Set data[k0][k1]... = value, merging nested mappings; a missing key is left for validation to refuse."""
    head, *rest = keys
    if rest:
        child = data.setdefault(head, {})
        if not isinstance(child, dict):
            data[head] = child = {}
        _merge(child, rest, value)
    elif isinstance(value, Mapping) and isinstance(data.get(head), dict):
        for key, item in value.items():
            _merge(data[head], [key], item)
    else:
        data[head] = value
