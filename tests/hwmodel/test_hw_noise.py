"""The crossbar noise model against closed forms: exact when ideal, and each non-ideality's mean and variance.

Monte-Carlo checks are z-tests at |z| < 4 (a false alarm about once in
16 000 runs) with fixed generator seeds, so they are deterministic.
"""

from __future__ import annotations

import math

import pytest
import torch

from hwmodel import get_device, noise
from hwmodel.encoding import adc_step, convert, quantise, to_cells, to_planes
from hwmodel.mapping import tile_matrix
from hwmodel.noise import noisy_matmul, program_matrix

IDEAL_ADC = {"adc.bits": 16}  # LSB 2^-7 of a level: every noise-free column sum converts exactly
SMALL = {**IDEAL_ADC, "precision.weight_bits": 8, "precision.input_bits": 8}


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _quantised_product(x: torch.Tensor, w: torch.Tensor, device) -> torch.Tensor:
    xi, sx = quantise(x, device.precision.input_bits, dims=(-1,))
    wi, sw = quantise(w, device.precision.weight_bits, dims=(-2, -1))
    return (xi @ wi.transpose(-1, -2)) * sx * sw


def _read_weights(w_int: torch.Tensor, x_int: torch.Tensor, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per read (plane p, array a, slice j, row i): its digital weight and the digit x level it sums, for one vector."""
    cells = to_cells(w_int, device.precision.weight_bits, device)  # (A, S, N, K)
    planes = to_planes(x_int, device.precision.input_bits, device)  # (P, K)
    weights = planes.weights[:, None, None] * cells.slice_weights  # (P, A, S)
    return weights, planes.digits[:, None, None, None, :] * cells.levels  # (P, A, S, N, K)


@pytest.mark.parametrize(
    "overrides",
    [
        IDEAL_ADC,
        {**IDEAL_ADC, "crossbar.signed_values": "differential"},
        {**IDEAL_ADC, "dac.bits": 2},
        {**IDEAL_ADC, "dac.bits": 3, "crossbar.bits_per_cell": 3, "crossbar.rows": 64},
    ],
)
def test_ideal_device_computes_the_quantised_product_exactly(overrides):
    """Exact, not approximate: every sum is an integer in float64, far below 2**53, and the ADC's LSB divides 1."""
    device = get_device("isaac", overrides)
    x, w = torch.randn(5, 300, dtype=torch.float64), torch.randn(40, 300, dtype=torch.float64)
    y = noisy_matmul(x, w, device, _generator())
    assert torch.equal(y, _quantised_product(x, w, device))
    assert torch.allclose(y, x @ w.T, atol=1e-2)  # 16-bit fixed point of both operands


def test_a_batch_of_written_operands_is_one_product_per_instance():
    device = get_device("isaac", IDEAL_ADC)
    q, k = torch.randn(2, 3, 7, 64, dtype=torch.float64), torch.randn(2, 3, 9, 64, dtype=torch.float64)
    y = noisy_matmul(q, k, device, _generator())
    assert y.shape == (2, 3, 7, 9)
    assert torch.equal(y[1, 2], noisy_matmul(q[1, 2], k[1, 2], device, _generator()))


def test_the_mapping_is_the_one_pricing_uses():
    device = get_device("isaac", {"crossbar.signed_values": "differential"})
    cells = to_cells(torch.zeros(576, 192), 16, device)
    assert cells.levels.shape[:2] == (2, 8)  # a pair of 15-bit magnitudes in 8 two-bit cells each
    assert tile_matrix(192, 576, device).value_slices == 2 * 8
    assert program_matrix(torch.randn(1, 576, 192), device, _generator()).conductance.shape[-2:] == (2, 128)


def _batch_of_copies(copies: int, device, rows: int = 200, columns: int = 3):
    """One input vector and one matrix, programmed `copies` times (independent draws): (B, 1, K), (B, N, K)."""
    x, w = torch.randn(1, 1, rows, dtype=torch.float64), torch.randn(1, columns, rows, dtype=torch.float64)
    return x.expand(copies, 1, rows), w.expand(copies, columns, rows)


def _z(samples: torch.Tensor, mean: torch.Tensor, variance: torch.Tensor) -> torch.Tensor:
    """z of the sample variance (Gaussian samples: standard error variance * sqrt(2 / (n - 1)))."""
    n = samples.shape[0]
    observed = ((samples - mean) ** 2).mean(0)
    return (observed - variance) / (variance * math.sqrt(2 / (n - 1)))


@pytest.mark.parametrize("encoding", ["offset", "differential"])
def test_programming_noise_variance_is_the_closed_form(encoding):
    """Var y_n = (sx sw sigma)^2 sum over reads of (weight x digit x level)^2; the mean stays the clean product."""
    sigma = 0.05
    device = get_device("isaac", {**SMALL, "noise.programming_sigma": sigma, "crossbar.signed_values": encoding})
    x, w = _batch_of_copies(4000, device)
    y = noisy_matmul(x, w, device, _generator(1))[:, 0, :]  # (B, N)
    xi, sx = quantise(x[0], 8, dims=(-1,))
    wi, sw = quantise(w[0], 8, dims=(-2, -1))
    weights, terms = _read_weights(wi, xi[0], device)
    # Each cell is one Gaussian draw shared by all planes: sum the planes before squaring.
    per_cell = torch.einsum("pas,pasnk->asnk", weights, terms)
    predicted = (sx * sw * sigma).square().squeeze() * per_cell.square().sum(dim=(0, 1, 3))
    clean = _quantised_product(x[0], w[0], device)[0]
    assert _z(y, clean, predicted).abs().max() < 4
    assert ((y.mean(0) - clean) / (predicted / y.shape[0]).sqrt()).abs().max() < 4


def test_read_noise_variance_is_the_closed_form():
    """Fresh per read: Var y_n = (sx sw sigma_r)^2 sum over reads of weight^2 x sum over rows of (digit x level)^2."""
    sigma = 0.05
    device = get_device("isaac", {**SMALL, "noise.read_sigma": sigma})
    x, w = _batch_of_copies(4000, device)
    y = noisy_matmul(x, w, device, _generator(2))[:, 0, :]
    xi, sx = quantise(x[0], 8, dims=(-1,))
    wi, sw = quantise(w[0], 8, dims=(-2, -1))
    weights, terms = _read_weights(wi, xi[0], device)
    tiles = terms.unflatten(-1, (-1, 128)) if terms.shape[-1] % 128 == 0 else _pad_tiles(terms)
    per_read = tiles.square().sum(-1)  # (P, A, S, N, R): one read's variance over sigma^2
    predicted = (sx * sw * sigma).square().squeeze() * torch.einsum("pas,pasnr->n", weights.square(), per_read)
    clean = _quantised_product(x[0], w[0], device)[0]
    assert _z(y, clean, predicted).abs().max() < 4


def _pad_tiles(terms: torch.Tensor) -> torch.Tensor:
    padded = torch.nn.functional.pad(terms, (0, -terms.shape[-1] % 128))
    return padded.unflatten(-1, (-1, 128))


def test_adc_rounding_error_is_uniform_with_variance_step_squared_over_12():
    device = get_device("isaac", {"adc.bits": 6})
    full_scale, step = adc_step(device)
    assert step == 8.0  # 384 levels x digits over 63 steps: 6.1, up to a power of two
    sums = torch.rand(200_000, generator=_generator(3), dtype=torch.float64) * full_scale
    error = convert(sums, device) - sums
    assert error.abs().max() <= step / 2
    # Inside the range the error is uniform on [-step/2, step/2] but for the top code's edge, a fraction step/full_scale.
    inside = error[sums < full_scale - step]
    z = (inside.var() - step**2 / 12) / (step**2 / 12 * math.sqrt(0.8 / inside.numel()))  # uniform: var of e^2 = 0.8 var^2
    assert abs(z) < 4


def test_adc_clips_sums_outside_its_range():
    device = get_device("isaac", {"adc.bits": 16, "noise.adc_range": 0.25})
    full_scale, step = adc_step(device)
    assert full_scale == 96.0
    sums = torch.tensor([-5.0, 0.0, 50.0, 96.0, 200.0, 384.0], dtype=torch.float64)
    assert convert(sums, device).tolist() == [0.0, 0.0, 50.0, 96.0, 96.0, 96.0]


def _adc_bound(x: torch.Tensor, w: torch.Tensor, device) -> torch.Tensor:
    """Largest error of the ADC rounding every read inside its range: sx sw LSB/2 sum over reads of |read weight|."""
    _, sx = quantise(x, device.precision.input_bits, dims=(-1,))
    _, sw = quantise(w, device.precision.weight_bits, dims=(-2, -1))
    cells = to_cells(torch.zeros(w.shape), device.precision.weight_bits, device)
    planes = to_planes(torch.zeros(x.shape[-1]), device.precision.input_bits, device)
    reads = (planes.weights.abs()[:, None, None] * cells.slice_weights.abs()).sum() * tile_matrix(x.shape[-1], w.shape[-2], device).row_tiles
    return sx * sw * adc_step(device)[1] / 2 * reads


def test_a_narrow_adc_errs_within_its_closed_form_bound():
    exact_device, device = get_device("isaac", SMALL), get_device("isaac", {**SMALL, "adc.bits": 6})
    x, w = torch.randn(8, 200, dtype=torch.float64), torch.randn(5, 200, dtype=torch.float64)
    error = noisy_matmul(x, w, device, _generator()) - noisy_matmul(x, w, exact_device, _generator())
    assert (error.abs() <= _adc_bound(x, w, device)).all()
    assert error.abs().max() > 0


def test_dac_quantisation_error_variance_is_step_squared_over_12():
    """Weights exact in 8 bits, inputs in 6: Var(y - x W^T) = sum_k W_nk^2 sx^2 / 12 (the max element errs by 0)."""
    device = get_device("isaac", {**SMALL, "precision.input_bits": 6})
    w = torch.randint(-127, 128, (2, 256), generator=_generator(4)).to(torch.float64)
    w[0, 0] = 127.0  # scale exactly 1
    x = torch.rand(4000, 256, generator=_generator(5), dtype=torch.float64) * 2 - 1
    error = noisy_matmul(x, w, device, _generator()) - x @ w.T
    _, sx = quantise(x, 6, dims=(-1,))
    predicted = sx.square() / 12 * w.square().sum(-1)  # (vectors, N)
    ratio = error.square().sum(0) / predicted.sum(0)
    assert ((ratio - 1) / math.sqrt(2 / x.shape[0])).abs().max() < 4


@pytest.mark.parametrize("encoding", ["offset", "differential"])
def test_uniform_drift_and_its_compensation(encoding):
    """Differential pairs scale by (t / t0)^-nu; an offset code also loses part of its digitally subtracted offset.

    Either way one factor per crossbar undoes a drift every cell shares.
    """
    drift = {**SMALL, "noise.drift_nu": 0.06, "noise.drift_t0_s": 20.0, "crossbar.signed_values": encoding}
    x, w = torch.randn(4, 300, dtype=torch.float64), torch.randn(6, 300, dtype=torch.float64)
    clean = noisy_matmul(x, w, get_device("isaac", {**SMALL, "crossbar.signed_values": encoding}), _generator())
    day = noisy_matmul(x, w, get_device("isaac", drift), _generator(), time_s=86400.0)
    factor, bound = (86400.0 / 20.0) ** -0.06, _adc_bound(x, w, get_device("isaac", drift))
    assert ((day - clean * factor).abs() <= bound).all() == (encoding == "differential")  # drifted sums round in the ADC
    early = noisy_matmul(x, w, get_device("isaac", drift), _generator(), time_s=5.0)
    assert torch.equal(early, clean)  # no drift before t0
    compensated = noisy_matmul(x, w, get_device("isaac", {**drift, "noise.drift_compensation": True}), _generator(), time_s=86400.0)
    assert ((compensated - clean).abs() <= bound / factor).all()


def test_compensation_recovers_the_mean_under_cell_to_cell_drift():
    """Differential pairs, nu drawn per cell: raw outputs shrink by E[(t/t0)^-nu] = exp(-nu L + (sigma L)^2 / 2), L = ln(t/t0)."""
    overrides = {**SMALL, "crossbar.signed_values": "differential", "noise.drift_nu": 0.06, "noise.drift_nu_sigma": 0.02, "noise.drift_t0_s": 20.0}
    x, w = _batch_of_copies(2000, get_device("isaac", SMALL))
    clean = _quantised_product(x[0], w[0], get_device("isaac", overrides))[0]
    year = 3.15e7
    log_t = math.log(year / 20.0)
    shrink = math.exp(-0.06 * log_t + (0.02 * log_t) ** 2 / 2)
    for compensation, expected in ((True, clean), (False, clean * shrink)):
        device = get_device("isaac", {**overrides, "noise.drift_compensation": compensation})
        y = noisy_matmul(x, w, device, _generator(6), time_s=year)[:, 0]
        standard_error = y.std(0) / math.sqrt(y.shape[0])
        assert ((y.mean(0) - expected) / standard_error).abs().max() < 4


def test_stuck_cells_occur_at_their_rates():
    device = get_device("isaac", {"noise.stuck_on_rate": 0.05, "noise.stuck_off_rate": 0.02})
    weight = torch.randn(1, 64, 256)
    programmed = program_matrix(weight, device, _generator(7))
    target = to_cells(quantise(weight, 16, dims=(-2, -1))[0], 16, device).levels.unflatten(-1, (2, 128))
    middle = (target > 0) & (target < 3)  # cells whose stuck value differs from their target
    conductance = programmed.conductance[middle]
    n = conductance.numel()
    for rate, level in ((0.05, 3.0), (0.02, 0.0)):
        observed = (conductance == level).double().mean()
        assert abs(observed - rate) / math.sqrt(rate * (1 - rate) / n) < 4


@pytest.mark.parametrize("overrides", [IDEAL_ADC, {**IDEAL_ADC, "noise.stuck_on_rate": 0.1, "noise.stuck_off_rate": 0.1, "crossbar.signed_values": "differential"}])
def test_the_one_product_read_equals_the_per_read_path_bit_for_bit(overrides):
    """Where no conversion can change a sum (integer conductances, a lossless ADC) reads merge into one product:
    the same generator draws (programming only) give the same outputs exactly, not just the same moments."""
    device = get_device("isaac", overrides)
    x, w = torch.randn(1, 6, 300, dtype=torch.float64), torch.randn(1, 40, 300, dtype=torch.float64)
    programmed = program_matrix(w, device, _generator(8))
    assert noise._converts_exactly(programmed, device)
    integers, _ = quantise(x, device.precision.input_bits, dims=(-1,))
    assert torch.equal(noise._read_at_once(programmed, integers), noise._read_chunk(programmed, integers, device, _generator()))


@pytest.mark.parametrize("overrides", [{}, {**IDEAL_ADC, "noise.programming_sigma": 0.01}, {**IDEAL_ADC, "noise.read_sigma": 0.01}])
def test_reads_stay_per_read_where_the_adc_changes_a_sum(overrides):
    """ISAAC's own 8-bit ADC rounds to 2 levels; noise makes sums fractional, which any finite ADC rounds."""
    device = get_device("isaac", overrides)
    assert not noise._converts_exactly(program_matrix(torch.randn(1, 4, 64), device, _generator()), device)


def test_an_ideal_device_is_torchs_own_product():
    device = get_device("isaac", {"noise.ideal": True})
    x, w, k = torch.randn(5, 30), torch.randn(7, 30), torch.randn(2, 9, 30)
    assert torch.equal(noisy_matmul(x, w, device, _generator()), torch.nn.functional.linear(x, w))
    assert torch.equal(noisy_matmul(x.expand(2, 5, 30), k, device, _generator()), x @ k.transpose(-1, -2))
    with pytest.raises(ValueError, match="ideal device has no non-idealities"):
        get_device("isaac", {"noise.ideal": True, "noise.read_sigma": 0.01})


@pytest.mark.parametrize("encoding", ["offset", "differential"])
def test_stored_values_are_the_fixed_point_weights_without_noise(encoding):
    device = get_device("isaac", {"crossbar.signed_values": encoding})
    w = torch.randn(2, 40, 300, dtype=torch.float64)
    integers, scale = quantise(w, device.precision.weight_bits, dims=(-2, -1))
    assert torch.equal(noise.stored_matrix(program_matrix(w, device, _generator()), 300), integers * scale)


@pytest.mark.parametrize("encoding", ["offset", "differential"])
def test_stored_values_vary_as_their_cells_do(encoding):
    """Var w_nk = (sw sigma)^2 sum over arrays a and slices j of (slice weight x level)^2; the mean is the fixed-point weight."""
    sigma = 0.05
    device = get_device("isaac", {**SMALL, "noise.programming_sigma": sigma, "crossbar.signed_values": encoding})
    _, w = _batch_of_copies(4000, device)
    stored = noise.stored_matrix(program_matrix(w, device, _generator(2)), w.shape[-1])
    integers, scale = quantise(w[0], 8, dims=(-2, -1))
    cells = to_cells(integers, 8, device)
    predicted = (scale * sigma).square() * torch.einsum("as,asnk->nk", cells.slice_weights.square(), cells.levels.square())
    spread = predicted > 0  # a weight whose cells are all empty carries no noise
    assert _z(stored, integers * scale, predicted)[spread].abs().max() < 4.5
    assert torch.equal(stored[:, ~spread], (integers * scale)[~spread].expand(stored.shape[0], -1))
    assert ((stored.mean(0) - integers * scale)[spread] / (predicted[spread] / stored.shape[0]).sqrt()).abs().max() < 4.5
