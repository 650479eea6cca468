"""Token orders: each is the permutation its name says, prefix tokens stay in front, and every order is undone."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from surgery.rewrite.token_order import TOKEN_ORDERS, in_order


class Recorder:
    """A substitute that remembers the order it saw and returns its input."""

    def __init__(self) -> None:
        self.seen: list[list[int]] = []

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        self.seen.append(tokens[0, :, 0].long().tolist())
        return tokens


def numbered(prefix: int, h: int, w: int) -> torch.Tensor:
    """(1, prefix + h·w, 2) tokens whose first channel is their raster index."""
    return torch.arange(prefix + h * w, dtype=torch.float32).view(1, -1, 1).expand(1, -1, 2).contiguous()


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("raster", [[0, 1, 2, 3, 4, 5]]),
        ("snake", [[0, 1, 2, 5, 4, 3]]),
        ("column", [[0, 3, 1, 4, 2, 5]]),
        ("multiscan", [[0, 1, 2, 3, 4, 5], [0, 1, 2, 5, 4, 3], [0, 3, 1, 4, 2, 5], [0, 3, 4, 1, 2, 5]]),
    ],
)
def test_each_order_reads_a_2x3_grid_as_named(order, expected):
    recorder = Recorder()
    out = in_order(recorder, numbered(0, 2, 3), order, (2, 3))
    assert recorder.seen == expected
    torch.testing.assert_close(out, numbered(0, 2, 3))


def test_prefix_tokens_stay_in_front():
    recorder = Recorder()
    in_order(recorder, numbered(1, 2, 2), "column", (2, 2), prefix=1)
    assert recorder.seen == [[0, 1, 3, 2, 4]]


@settings(max_examples=30, deadline=None)
@given(h=st.integers(1, 6), w=st.integers(1, 6), prefix=st.integers(0, 2), order=st.sampled_from(TOKEN_ORDERS))
def test_every_order_is_undone_for_a_position_wise_substitute(h, w, prefix, order):
    tokens = torch.randn(2, prefix + h * w, 3)
    position_wise = torch.nn.Linear(3, 3)
    with torch.no_grad():
        torch.testing.assert_close(in_order(position_wise, tokens, order, (h, w), prefix), position_wise(tokens))


def test_a_recurrence_sees_a_different_sequence_in_another_order():
    cumulative = lambda tokens: tokens.cumsum(1)  # noqa: E731 - order-sensitive on purpose
    tokens = torch.randn(1, 9, 2)
    assert not torch.allclose(in_order(cumulative, tokens, "snake", (3, 3)), cumulative(tokens))


def test_orders_other_than_raster_need_a_grid():
    with pytest.raises(ValueError, match="needs the token grid"):
        in_order(lambda t: t, torch.randn(1, 4, 2), "snake", None)
