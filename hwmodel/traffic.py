"""Activation traffic: every op reads its inputs from and writes its outputs to the tile buffer.

Inputs cross the buffer and the bus once (broadcast to all the IMAs that need
them); outputs cross the bus, the buffer and one router hop, since the next op
usually sits on another tile. Values move at the device's input precision.
"""

from __future__ import annotations

from hwmodel.cost import Cost
from hwmodel.device import Device


def move(read_elements: float, written_elements: float, device: Device) -> Cost:
    """Traffic energy and bytes of reading and writing that many activation values."""
    bits = device.precision.input_bits
    buffers = device.buffers
    per_read = buffers.tile_buffer_pj_per_bit + buffers.bus_pj_per_bit
    per_write = per_read + buffers.router_pj_per_bit
    energy_pj = bits * (read_elements * per_read + written_elements * per_write)
    return Cost(traffic_j=energy_pj * 1e-12, traffic_bytes=(read_elements + written_elements) * bits / 8)
