"""DeepHoyer pruning of the BiLSTM: Group-HS values, the eq. 6 groups, masks, and shrink vs. its masked oracle."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import torch
from torch import nn

from far_modules import (
    MultiHeadBiLSTM,
    Prunable,
    UnitKey,
    check_keep,
    group_hs,
    hoyer_penalty,
    keep_masks,
    prunable_modules,
    pruning_report,
    shrink_uniformly,
    uniform_keep,
    unit_counts,
)
from far_modules.prune import safe_sqrt

SIZES = ((5, 4), (3, 6))
# Uneven removals: head 0 forward loses two, head 0 backward none, head 1 forward keeps one.
KEEP = {
    (0, "forward"): [True, False, True, True, False],
    (0, "backward"): [True, True, True, True],
    (1, "forward"): [False, False, True],
    (1, "backward"): [False, True, False, True, True, False],
}


def make(bias: bool = True) -> MultiHeadBiLSTM:
    torch.manual_seed(0)
    return MultiHeadBiLSTM(12, SIZES, head_dim=6, bias=bias)


def keep_tensors() -> dict[UnitKey, torch.Tensor]:
    return {key: torch.tensor(mask) for key, mask in KEEP.items()}


def lstm_of(module: MultiHeadBiLSTM, key: UnitKey) -> nn.LSTM:
    head, direction = key
    return (module.forward_rnns if direction == "forward" else module.backward_rnns)[head]


def composite(module: MultiHeadBiLSTM, key: UnitKey) -> torch.Tensor:
    """The paper's composite matrix, built explicitly: one row per unit, (h, 4d + 4h + 4h + D)."""
    order = [(h, d) for h in range(module.num_heads) for d in ("forward", "backward")]
    offset = sum(lstm_of(module, k).hidden_size for k in order[: order.index(key)])
    lstm = lstm_of(module, key)
    h = lstm.hidden_size
    ih_rows = lstm.weight_ih_l0.view(4, h, -1).permute(1, 0, 2).reshape(h, -1)  # (h, 4d)
    hh_rows = lstm.weight_hh_l0.view(4, h, h).permute(1, 0, 2).reshape(h, -1)  # (h, 4h)
    hh_cols = lstm.weight_hh_l0.T  # (h, 4h)
    out_cols = module.out_proj.weight[:, offset : offset + h].T  # (h, D)
    return torch.cat([ih_rows, hh_rows, hh_cols, out_cols], dim=1)


def norms_by_key(module: MultiHeadBiLSTM) -> dict[UnitKey, torch.Tensor]:
    return {group.key: group.norms().detach().clone() for group in module.unit_groups()}


@pytest.mark.parametrize(
    ("norms", "expected"),
    [([3.0, 4.0], 49 / 25), ([0.0, 5.0, 0.0], 1.0), ([2.0] * 7, 7.0), ([1e-3] * 3, 3.0)],
)
def test_group_hs_hand_computed(norms: list[float], expected: float) -> None:
    assert group_hs(torch.tensor(norms)).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("squares", [[0.0, 0.0, 0.0], [0.0, 4.0, 0.0, 9.0]])
def test_group_hs_gradient_is_finite_at_zero_norms(squares: list[float]) -> None:
    squares_t = torch.tensor(squares, requires_grad=True)
    group_hs(safe_sqrt(squares_t)).backward()
    assert torch.isfinite(squares_t.grad).all()
    assert (squares_t.grad[squares_t == 0] == 0).all()


def test_safe_sqrt_is_exact() -> None:
    assert torch.equal(safe_sqrt(torch.tensor([0.0, 9.0, 16.0])), torch.tensor([0.0, 3.0, 4.0]))


def test_bilstm_is_prunable() -> None:
    module = make()
    assert isinstance(module, Prunable)
    assert list(prunable_modules(nn.Sequential(nn.Linear(12, 12), module))) == ["1"]
    assert unit_counts(module) == {(0, "forward"): 5, (0, "backward"): 4, (1, "forward"): 3, (1, "backward"): 6}


def test_unit_norms_are_rows_of_the_composite_matrix() -> None:
    module = make()
    for group in module.unit_groups():
        expected = torch.linalg.vector_norm(composite(module, group.key), dim=1)
        torch.testing.assert_close(group.norms(), expected)


def test_penalty_sums_group_hs_per_head_and_direction() -> None:
    module = make()
    expected = sum(group_hs(torch.linalg.vector_norm(composite(module, key), dim=1)) for key in KEEP)
    torch.testing.assert_close(hoyer_penalty(module), expected)


def test_penalty_gradient_touches_exactly_the_eq6_weights() -> None:
    module = make()
    hoyer_penalty(module).backward()
    for name, param in module.named_parameters():
        if "weight_ih" in name or "weight_hh" in name or name == "out_proj.weight":
            assert param.grad is not None and (param.grad != 0).all(), name
        else:
            assert param.grad is None, name


@pytest.mark.parametrize("dead", ["some", "all"])
def test_penalty_gradient_is_finite_with_dead_units(dead: str) -> None:
    module = make().masked(keep_tensors())
    if dead == "all":
        with torch.no_grad():
            for name, param in module.named_parameters():
                if "weight_ih" in name or "weight_hh" in name or name == "out_proj.weight":
                    param.zero_()
    penalty = hoyer_penalty(module)
    penalty.backward()
    assert torch.isfinite(penalty)
    assert all(torch.isfinite(p.grad).all() for p in module.parameters() if p.grad is not None)


# Head 1 backward has 6 units and starts at out_proj column 5 + 4 + 3 = 12; unit 2's f-gate row is 1*6 + 2.
@pytest.mark.parametrize(
    ("parameter", "index", "units"),
    [
        ("weight_ih_l0", (8, 0), {2}),
        ("weight_hh_l0", (8, 5), {2, 5}),  # in unit 2's f-gate row and unit 5's column
        ("weight_hh_l0", (3 * 6 + 4, 2), {2, 4}),  # unit 2's pull on unit 4: in 4's row and 2's column
        ("weight_hh_l0", (8, 2), {2}),  # unit 2's own recurrence
        ("out_proj", (0, 14), {2}),
        ("bias_ih_l0", (8,), set()),
    ],
)
def test_one_weight_moves_only_its_units_norms(parameter: str, index: tuple[int, ...], units: set[int]) -> None:
    module, key = make(), (1, "backward")
    before = norms_by_key(module)
    tensor = module.out_proj.weight if parameter == "out_proj" else getattr(lstm_of(module, key), parameter)
    with torch.no_grad():
        tensor[index] += 1.0
    after = norms_by_key(module)
    moved = {(k, j) for k in before for j in torch.nonzero(before[k] != after[k]).flatten().tolist()}
    assert moved == {(key, j) for j in units}


@pytest.mark.parametrize("bias", [True, False])
def test_shrink_matches_masked(bias: bool) -> None:
    module, keep = make(bias), keep_tensors()
    x = torch.randn(2, 7, 12)
    small, masked = module.shrink(keep), module.masked(keep)
    assert small.hidden_sizes == ((3, 4), (1, 3))
    torch.testing.assert_close(small(x), masked(x), atol=1e-6, rtol=0)
    assert not torch.allclose(masked(x), module(x), atol=1e-3)


@pytest.mark.parametrize("bias", [True, False])
def test_shrink_parameter_count(bias: bool) -> None:
    small, d, dim = make(bias).shrink(keep_tensors()), 6, 12
    units = [3, 4, 1, 3]
    lstms = sum(4 * h * d + 4 * h * h + 8 * h * bias for h in units)
    projections = dim * 2 * d + 2 * d * bias + sum(units) * dim + dim * bias
    assert sum(p.numel() for p in small.parameters()) == 2 * dim + projections + lstms


def test_shrink_leaves_the_original_untouched() -> None:
    module = make()
    state = {k: v.clone() for k, v in module.state_dict().items()}
    module.shrink(keep_tensors())
    module.masked(keep_tensors())
    assert all(torch.equal(state[k], v) for k, v in module.state_dict().items())


def test_from_config_replays_a_shrunk_module() -> None:
    small = make().shrink(keep_tensors())
    config = json.loads(json.dumps(small.config()))
    rebuilt = MultiHeadBiLSTM.from_config(config)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in small.state_dict().items()}
    rebuilt.load_state_dict(small.state_dict(), strict=True)
    x = torch.randn(1, 5, 12)
    assert torch.equal(rebuilt(x), small(x))
    assert rebuilt.config() == config


def test_keep_masks_follow_the_threshold() -> None:
    module = make()
    threshold = torch.cat([group.norms() for group in module.unit_groups()]).median().item()
    masks = keep_masks(module, threshold)
    for group in module.unit_groups():
        norms = group.norms()
        expected = norms > threshold if (norms > threshold).any() else norms == norms.max()
        assert torch.equal(masks[group.key], expected)


def test_keep_masks_keep_the_largest_unit_when_all_fall_below() -> None:
    module = make()
    masks = keep_masks(module, float("inf"))
    for group in module.unit_groups():
        assert masks[group.key].sum() == 1
        assert masks[group.key][group.norms().argmax()]


def test_keep_masks_recover_the_masked_units() -> None:
    keep = keep_tensors()
    masks = keep_masks(make().masked(keep), 0.0)
    assert masks.keys() == keep.keys()
    assert all(torch.equal(masks[key], keep[key]) for key in keep)


@pytest.mark.parametrize(
    "edit",
    [
        lambda keep: keep.pop((1, "forward")),
        lambda keep: keep.update({(2, "forward"): torch.ones(3, dtype=torch.bool)}),
        lambda keep: keep.update({(1, "forward"): torch.ones(4, dtype=torch.bool)}),
        lambda keep: keep.update({(1, "forward"): torch.zeros(3, dtype=torch.bool)}),
        lambda keep: keep.update({(1, "forward"): torch.tensor([0, 1, 1])}),
    ],
    ids=["missing", "unknown", "wrong-size", "empty", "not-bool"],
)
def test_bad_keep_is_rejected(edit: Callable[[dict[UnitKey, torch.Tensor]], object]) -> None:
    module, keep = make(), keep_tensors()
    edit(keep)
    with pytest.raises(ValueError, match="keep"):
        module.shrink(keep)
    with pytest.raises(ValueError, match="keep"):
        check_keep(module.unit_groups(), keep, torch.device("cpu"))


def test_pruning_report() -> None:
    module = make()
    report = pruning_report(unit_counts(module), unit_counts(module.shrink(keep_tensors())))
    assert report.fraction((1, "forward")) == pytest.approx(1 / 3)
    assert report.overall == pytest.approx(11 / 18)
    data = json.loads(json.dumps(report.to_dict()))
    assert [(row["head"], row["direction"]) for row in data["units"]] == list(KEEP)
    assert data["units"][0] == {"head": 0, "direction": "forward", "before": 5, "after": 3, "kept": 0.6}
    with pytest.raises(ValueError, match="pruning"):
        pruning_report(unit_counts(module.shrink(keep_tensors())), unit_counts(module))


def test_penalty_descends_under_gradient_steps() -> None:
    module = make()
    start = hoyer_penalty(module).item()
    for _ in range(20):
        module.zero_grad()
        hoyer_penalty(module).backward()
        with torch.no_grad():
            for param in module.parameters():
                if param.grad is not None:
                    param -= 0.05 * param.grad
    assert hoyer_penalty(module).item() < start


def test_uniform_keep_keeps_a_rounded_share_of_every_group_and_at_least_one():
    module = MultiHeadBiLSTM(12, SIZES, head_dim=6)
    counts = {key: int(mask.sum()) for key, mask in uniform_keep(module, 0.5).items()}
    assert counts == {(0, "forward"): 2, (0, "backward"): 2, (1, "forward"): 2, (1, "backward"): 3}
    assert set(int(m.sum()) for m in uniform_keep(module, 0.01).values()) == {1}
    with pytest.raises(ValueError, match="keep ratio"):
        uniform_keep(module, 0.0)


def test_shrink_uniformly_replaces_every_substitute_in_place():
    model = nn.Sequential(MultiHeadBiLSTM(12, SIZES, head_dim=6), nn.ReLU(), MultiHeadBiLSTM(12, SIZES, head_dim=6))
    assert shrink_uniformly(model, 0.5) is model
    for index in (0, 2):
        assert unit_counts(model[index]) == {(0, "forward"): 2, (0, "backward"): 2, (1, "forward"): 2, (1, "backward"): 3}
    assert model(torch.randn(2, 7, 12)).shape == (2, 7, 12)
    with pytest.raises(ValueError, match="no prunable substitute"):
        shrink_uniformly(nn.Linear(3, 3), 0.5)
