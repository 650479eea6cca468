"""`device_noise` op by op: each crossbar op against torch's, and the policy for products of two activations."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hwmodel import get_device
from hwmodel.analog import device_noise
from hwmodel.recurrence import run_recurrent

LOSSLESS = get_device("isaac", {"adc.bits": 16})  # noise-free, 16-bit fixed point: products within ~1e-4
NOISY = get_device("isaac", {"adc.bits": 16, "noise.programming_sigma": 0.05, "noise.read_sigma": 0.02})


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_the_step_by_step_recurrence_is_torchs(cell, bidirectional):
    module = cell(5, 7, num_layers=2, bidirectional=bidirectional, batch_first=True).eval()
    x = torch.randn(3, 4, 5)
    with torch.no_grad():
        expected = module(x)
        h0 = torch.zeros(2 * (1 + bidirectional), 3, 7)
        got = run_recurrent(
            "lstm" if cell is nn.LSTM else "gru", x, (h0, h0) if cell is nn.LSTM else h0, module._flat_weights,
            has_biases=True, num_layers=2, bidirectional=bidirectional, batch_first=True, linear=lambda w, v: nn.functional.linear(v, w),
        )
    flat = [expected[0], *(expected[1] if cell is nn.LSTM else [expected[1]])]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got, flat))


@pytest.mark.parametrize(
    "module",
    [nn.LSTM(6, 8, bidirectional=True, batch_first=True), nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), nn.Linear(6, 5)],
    ids=["lstm", "conv", "linear"],
)
def test_a_noise_free_device_computes_each_weight_op_to_fixed_point_accuracy(module):
    x = torch.randn(2, 4, 9, 9) if isinstance(module, nn.Conv2d) else torch.randn(2, 5, 6)
    with torch.no_grad():
        expected = module(x)
        with device_noise(module, LOSSLESS, seed=0) as crossbars:
            got = module(x)
    first = lambda out: out[0] if isinstance(out, tuple) else out  # noqa: E731
    assert torch.allclose(first(got), first(expected), atol=1e-3) and not torch.equal(first(got), first(expected))
    assert sum(crossbars.counts.values()) == (2 if isinstance(module, nn.LSTM) else 1)


def test_products_of_two_activations_are_noisy_under_write_and_exact_under_digital():
    q, k, v = torch.randn(3, 2, 2, 5, 8).unbind(0)
    no_weights = nn.Module()
    for policy in ("write", "digital"):
        with device_noise(no_weights, NOISY, seed=0, policy=policy) as crossbars:
            fused = nn.functional.scaled_dot_product_attention(q, k, v)
            scores = q @ k.transpose(-2, -1)
        exact = policy == "digital"
        assert torch.equal(fused, nn.functional.scaled_dot_product_attention(q, k, v)) == exact
        assert torch.equal(scores, q @ k.transpose(-2, -1)) == exact
        assert torch.allclose(fused, nn.functional.scaled_dot_product_attention(q, k, v), atol=0.5)
        assert dict(crossbars.counts) == {"Product": 3}


def test_weights_are_programmed_once_per_seed():
    module = nn.Linear(16, 4)
    x = torch.randn(3, 16)
    device = get_device("isaac", {"adc.bits": 16, "noise.programming_sigma": 0.05})
    with torch.no_grad():
        with device_noise(module, device, seed=1) as crossbars:
            first, second = module(x), module(x)
        with device_noise(module, device, seed=1):
            again = module(x)
        with device_noise(module, device, seed=2):
            other = module(x)
    assert torch.equal(first, second) and torch.equal(first, again) and not torch.equal(first, other)
    assert list(crossbars.programmed) == ["weight"]


def test_a_crossbar_op_it_cannot_simulate_raises():
    module = nn.Linear(4, 3)
    with pytest.raises(NotImplementedError, match="einsum runs on crossbars"), device_noise(module, NOISY, seed=0):
        torch.einsum("bk,nk->bn", torch.randn(2, 4), module.weight)
