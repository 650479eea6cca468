"""The `Cost` value every pricing formula returns: it adds, so a model's cost is a sum of op costs.

Units are SI (seconds, joules, bytes) plus mm² for area. `+` composes in
series (latencies add); `repeat` reuses the same hardware, `side_by_side`
copies it. Overlap between independent ops is the scheduler's business.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class Cost:
    """Latency, energy by source, memory traffic and hardware footprint of one op or a group of ops.

    Attributes:
        latency_s: time from the op's inputs being ready to its outputs being ready.
        write_latency_s: the part of `latency_s` spent programming crossbars.
        analog_j: crossbar reads, DACs, sample-and-holds, ADCs, shift-and-add, IMA registers.
        adc_j: the part of `analog_j` spent in ADC conversions (the usual bottleneck of crossbar designs).
        digital_j: nonlinearities, elementwise ops, digital MACs, partial-sum merges.
        traffic_j: on-chip buffers and interconnect moving activations.
        write_j: programming crossbar cells (the `write` policy).
        traffic_bytes: activation bytes read from and written to on-chip buffers.
        crossbars: crossbars holding stationary weights.
        write_crossbars: crossbars reprogrammed on every inference.
        cell_writes: cell programming events per inference (verify pulses included).
        area_mm2: chip area taken by this op's crossbars and their share of IMA and tile periphery.
        macs: multiply-accumulates performed.
    """

    latency_s: float = 0.0
    write_latency_s: float = 0.0
    analog_j: float = 0.0
    adc_j: float = 0.0
    digital_j: float = 0.0
    traffic_j: float = 0.0
    write_j: float = 0.0
    traffic_bytes: float = 0.0
    crossbars: int = 0
    write_crossbars: int = 0
    cell_writes: float = 0.0
    area_mm2: float = 0.0
    macs: float = 0.0

    @property
    def energy_j(self) -> float:
        return self.analog_j + self.digital_j + self.traffic_j + self.write_j

    def __add__(self, other: Cost) -> Cost:
        return Cost(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def repeat(self, count: int) -> Cost:
        """The same hardware used `count` times in a row: footprint once, everything else `count` times."""
        scaled = {f.name: getattr(self, f.name) * count for f in fields(self) if f.name not in _FOOTPRINT}
        return replace(self, **scaled)

    def side_by_side(self, count: int) -> Cost:
        """`count` copies on separate hardware at once: latency once, everything else `count` times."""
        scaled = {f.name: getattr(self, f.name) * count for f in fields(self) if f.name not in _LATENCY}
        return replace(self, **scaled)


_FOOTPRINT = frozenset({"crossbars", "write_crossbars", "area_mm2"})
_LATENCY = frozenset({"latency_s", "write_latency_s"})


def total(costs: list[Cost] | tuple[Cost, ...]) -> Cost:
    """The series sum of `costs` (zero for none)."""
    result = Cost()
    for cost in costs:
        result = result + cost
    return result
