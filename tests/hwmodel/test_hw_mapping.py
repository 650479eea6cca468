"""Tiling, bit slicing and bit-serial reads: analytic spot checks."""

from __future__ import annotations

import pytest

from hwmodel import Gemm, get_device, price
from hwmodel.mapping import count_reads, tile_matrix

# 8-bit inputs over ISAAC's 1-bit DACs and 2-bit cells.
EIGHT_BIT = get_device("isaac", {"precision.input_bits": 8, "precision.weight_bits": 8})


def test_one_crossbar_mvm_takes_eight_cycles_and_128x8_conversions():
    two_bit_weights = tile_matrix(128, 128, EIGHT_BIT, bits=2)  # one 2-bit slice: exactly one crossbar
    assert (two_bit_weights.crossbars, two_bit_weights.value_slices) == (1, 1)
    reads = count_reads(two_bit_weights, 1, EIGHT_BIT)
    assert reads.cycles == 8
    assert reads.conversions == 128 * 8
    assert reads.row_drives == 128 * 8


def test_every_weight_slice_converts_its_columns_once_per_input_slice():
    tiling = tile_matrix(128, 32, EIGHT_BIT)  # 32 8-bit weights = 4 slices x 32 = 128 columns
    assert (tiling.value_slices, tiling.crossbars) == (4, 1)
    reads = count_reads(tiling, 1, EIGHT_BIT)
    assert reads.cycles == 8
    assert reads.conversions == tiling.value_slices * 32 * 8


def test_mvm_latency_is_read_cycles_times_the_cycle():
    cost = price(Gemm(rows=128, cols=32, vectors=1), EIGHT_BIT)
    assert cost.latency_s == pytest.approx(8 * 100e-9)
    assert cost.crossbars == 1 and cost.macs == 128 * 32


def test_isaac_places_sixteen_16_bit_weights_per_crossbar():
    isaac = get_device("isaac")
    tiling = tile_matrix(192, 576, isaac)  # DeiT-Tiny qkv
    assert (tiling.row_tiles, tiling.col_tiles, tiling.crossbars) == (2, 576 // 16, 72)


def test_row_tiles_produce_partial_sums_to_merge():
    tiling = tile_matrix(129, 16, EIGHT_BIT)
    assert tiling.row_tiles == 2
    assert count_reads(tiling, 3, EIGHT_BIT).partial_sums == 3 * 16


def test_replicas_split_the_vectors():
    one = count_reads(tile_matrix(64, 16, EIGHT_BIT), 10, EIGHT_BIT)
    four = count_reads(tile_matrix(64, 16, EIGHT_BIT, replicas=4), 10, EIGHT_BIT)
    assert (one.cycles, four.cycles) == (10 * 8, 3 * 8)
    assert four.conversions == one.conversions  # same work, spread over more crossbars
