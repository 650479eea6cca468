"""The GPU roofline baseline."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hwmodel import GPUS, Gemm, Nonlinear, Recurrence, Workload, get_gpu, roofline, roofline_total
from hwmodel.gpu import roofline_op

A100 = get_gpu("a100")


def test_presets_carry_the_published_peaks():
    assert (GPUS["a100"].peak_tflops, GPUS["a100"].bandwidth_gbs) == (312, 2039)
    assert (GPUS["h100"].peak_tflops, GPUS["h100"].bandwidth_gbs) == (989, 3350)


def test_a_big_square_gemm_is_compute_bound():
    op = Gemm(rows=4096, cols=4096, vectors=4096)
    assert roofline_op(op, A100).latency_s == pytest.approx(2 * op.macs / 312e12)


def test_an_elementwise_op_is_memory_bound():
    op = Nonlinear(fn="gelu", elements=10**6)
    cost = roofline_op(op, A100)
    assert cost.traffic_bytes == 2 * 10**6 * 2  # read and write, fp16
    assert cost.latency_s == pytest.approx(cost.traffic_bytes / 2039e9)


def test_recurrence_steps_run_one_after_another():
    short, long = (roofline_op(Recurrence(input_size=64, hidden_size=64, steps=t), A100) for t in (100, 200))
    assert long.latency_s == pytest.approx(2 * short.latency_s, rel=0.01)
    assert short.latency_s > 100 * (4 * 64 * 64 * 2) / 2039e9  # W_hh re-read every step


def test_ops_run_in_series_and_energy_is_board_power_times_time():
    work = Workload((Gemm(rows=64, cols=64, vectors=64), Nonlinear(fn="softmax", elements=4096)))
    total = roofline_total(work, A100)
    assert total.latency_s == pytest.approx(sum(c.latency_s for c in roofline(work, A100)))
    assert total.energy_j == pytest.approx(400 * total.latency_s)


def test_overrides_and_refusals():
    assert get_gpu("h100", {"bandwidth_gbs": 4800}).bandwidth_gbs == 4800
    assert roofline_op(Gemm(rows=8, cols=8, vectors=8), get_gpu("a100", {"efficiency": 0.5})).latency_s == pytest.approx(
        2 * roofline_op(Gemm(rows=8, cols=8, vectors=8), A100).latency_s
    )
    with pytest.raises(ValidationError, match="efficiency"):
        get_gpu("a100", {"efficiency": 0})
    with pytest.raises(KeyError, match="known: a100, h100, v100"):
        get_gpu("b200")
