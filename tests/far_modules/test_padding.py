"""Padding never reaches a real token: every substitute gives each real token of a padded batch its unpadded output."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from far_modules import SiteSpec, build_substitute, substitute_names
from far_modules.padding import gather_tokens, real_first, restore

SPEC = SiteSpec(dim=8, num_heads=2, head_dim=4, seq_len=None)


@settings(max_examples=12, deadline=None)
@given(
    name=st.sampled_from(sorted(substitute_names())),
    lengths=st.lists(st.integers(1, 6), min_size=1, max_size=3),
    extra=st.integers(1, 4),
    where=st.sampled_from(["right", "left", "scattered"]),
    seed=st.integers(0, 2**16),
)
def test_a_real_tokens_output_is_the_same_whatever_padding_joins_it(name, lengths, extra, where, seed):
    torch.manual_seed(seed)
    substitute = build_substitute(name, SPEC, None).eval()
    width = max(lengths) + extra
    batch, mask = torch.randn(len(lengths), width, SPEC.dim) * 3, torch.zeros(len(lengths), width, dtype=torch.bool)
    generator = torch.Generator().manual_seed(seed)
    for row, length in enumerate(lengths):
        slots = {"right": torch.arange(length), "left": torch.arange(width - length, width)}.get(where)
        slots = slots if slots is not None else torch.randperm(width, generator=generator)[:length].sort().values
        mask[row, slots] = True
    with torch.no_grad():
        padded = substitute(batch, mask)
        for row in range(len(lengths)):
            alone = substitute(batch[row : row + 1, mask[row]])
            torch.testing.assert_close(padded[row, mask[row]], alone[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(substitute_names()))
def test_an_all_real_mask_changes_nothing(name):
    substitute = build_substitute(name, SPEC, None).eval()
    x = torch.randn(2, 5, SPEC.dim)
    with torch.no_grad():
        torch.testing.assert_close(substitute(x, torch.ones(2, 5, dtype=torch.bool)), substitute(x), rtol=1e-5, atol=1e-6)


def test_real_tokens_come_first_in_order_or_reversed_and_restore_undoes_it():
    mask = torch.tensor([[False, True, True, False, True]])
    assert real_first(mask).tolist() == [[1, 2, 4, 0, 3]]
    assert real_first(mask, reverse=True).tolist() == [[4, 2, 1, 0, 3]]
    x = torch.randn(1, 5, 3)
    torch.testing.assert_close(restore(gather_tokens(x, real_first(mask)), real_first(mask)), x)


def test_a_mask_of_the_wrong_shape_or_type_is_refused():
    substitute = build_substitute("bilstm", SPEC, None)
    with pytest.raises(ValueError, match=r"mask must be a \(B, N\) = \(2, 5\) bool tensor"):
        substitute(torch.randn(2, 5, SPEC.dim), torch.ones(2, 5))
