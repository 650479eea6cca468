"""Placing a matrix on crossbars (tiling, bit slicing, replication) and counting the reads a batch of vectors costs.

A (rows x cols) matrix of B-bit values takes ceil(B / bits_per_cell) adjacent
columns per value (ISAAC's layout), is cut into row tiles of crossbar.rows and
column tiles of whole values, and may be replicated so several input vectors
are read at once. Inputs are bit-serial: ceil(input_bits / dac.bits) read
cycles per vector, every active column converted once per cycle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwmodel.budget import input_slices, weight_slices
from hwmodel.device import Device


@dataclass(frozen=True)
class Tiling:
    """How one (rows x cols) matrix sits on crossbars."""

    rows: int
    cols: int
    value_slices: int
    row_tiles: int
    col_tiles: int
    replicas: int = 1

    @property
    def crossbars(self) -> int:
        return self.row_tiles * self.col_tiles * self.replicas

    @property
    def cells(self) -> int:
        """Programmed cells of one replica."""
        return self.rows * self.cols * self.value_slices


def tile_matrix(rows: int, cols: int, device: Device, *, bits: int | None = None, replicas: int = 1) -> Tiling:
    """The tiling of a matrix of `bits`-bit values (default: the weight precision)."""
    slices = weight_slices(device, bits)
    per_crossbar = device.crossbar.cols // slices
    col_tiles = math.ceil(cols / per_crossbar) if per_crossbar else math.ceil(cols * slices / device.crossbar.cols)
    row_tiles = math.ceil(rows / device.crossbar.rows)
    return Tiling(rows, cols, slices, row_tiles, col_tiles, replicas)


@dataclass(frozen=True)
class Reads:
    """Analog work of pushing input vectors through a tiling."""

    cycles: int
    row_drives: int
    cell_reads: int
    conversions: int
    partial_sums: int


def count_reads(tiling: Tiling, vectors: int, device: Device, *, bits: int | None = None) -> Reads:
    """Reads for `vectors` inputs of `bits` bits (default: the input precision), replicas sharing the vectors.

    `cycles` is sequential: ceil(vectors / replicas) vectors per replica, each
    taking one cycle per input slice. Row tiles produce partial sums that a
    digital adder merges, (row_tiles - 1) adds per output value.
    """
    slices = input_slices(device, bits)
    per_vector = slices * vectors
    return Reads(
        cycles=math.ceil(vectors / tiling.replicas) * slices,
        row_drives=per_vector * tiling.rows * tiling.col_tiles,
        cell_reads=per_vector * tiling.cells,
        conversions=per_vector * tiling.cols * tiling.value_slices * tiling.row_tiles,
        partial_sums=vectors * tiling.cols * (tiling.row_tiles - 1),
    )
