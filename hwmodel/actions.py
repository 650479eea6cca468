"""Energy per action (pJ), derived from component power and the rate at which each component acts.

Each component is assumed busy exactly when it acts, so a fully used IMA
dissipates its published power: DACs, sample-and-holds and the input register
act once per read cycle, ADCs at their conversion rate, shift-and-add units and
the output register once per conversion. At 1.2 GS/s these reproduce
hwcomponents-library's ISAAC numbers (ADC 1.67, DAC 0.417, shift-add 0.021 pJ).
"""

from __future__ import annotations

from dataclasses import dataclass

from hwmodel.budget import cycle_ns
from hwmodel.device import Device


def adc_pj(device: Device) -> float:
    """One conversion: mW / GS/s = pJ."""
    return device.adc.power_mw / device.adc.rate_gsps


def dac_pj(device: Device) -> float:
    """One row driven for one read cycle: mW x ns = pJ."""
    return device.dac.power_mw * cycle_ns(device)


def sample_hold_pj(device: Device) -> float:
    """One column sampled for one read cycle."""
    return device.ima.sample_hold.power_mw * cycle_ns(device)


def cell_read_pj(device: Device) -> float:
    return device.crossbar.read_energy_fj_per_cell * 1e-3


def shift_add_pj(device: Device) -> float:
    """One ADC result merged: each unit keeps up with the conversions of adcs / shift_add.count ADCs."""
    ima = device.ima
    return ima.shift_add.power_mw / (device.adc.rate_gsps * ima.adcs / ima.shift_add.count)


def input_register_pj_per_bit(device: Device) -> float:
    """The register feeds every DAC of the IMA dac.bits bits per read cycle."""
    bits_per_cycle = device.ima.crossbars * device.crossbar.rows * device.dac.bits
    return device.ima.input_register.power_mw * cycle_ns(device) / bits_per_cycle


def output_register_pj(device: Device) -> float:
    """One accumulated conversion result written; the register keeps up with all the IMA's ADCs."""
    return device.ima.output_register.power_mw / (device.adc.rate_gsps * device.ima.adcs)


@dataclass(frozen=True)
class ReadEnergy:
    """Energy of one read cycle split by who pays: per driven row, per cell, per sensed column (pJ)."""

    per_row: float
    per_cell: float
    per_column: float

    def of(self, rows: float, cells: float, columns: float) -> float:
        return rows * self.per_row + cells * self.per_cell + columns * self.per_column


def read_energy(device: Device) -> ReadEnergy:
    per_row = dac_pj(device) + device.dac.bits * input_register_pj_per_bit(device)
    per_column = sample_hold_pj(device) + adc_pj(device) + shift_add_pj(device) + output_register_pj(device)
    return ReadEnergy(per_row=per_row, per_cell=cell_read_pj(device), per_column=per_column)
