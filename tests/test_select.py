"""Selection is a pure function of sites and selectors: globs, classes, layer ranges, AND, last wins."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from surgery import Site, SurgeryError
from surgery.recipe import Rewrite, Selector
from surgery.rewrite import select
from surgery.rewrite.select import EmptySelection, matches


def site(index: int, path: str, class_name: str = "Attention") -> Site:
    return Site(
        index=index,
        path=path,
        class_name=class_name,
        signature=f"{class_name}.forward(x)",
        layout="tokens",
        dim=192,
        num_heads=3,
        head_dim=64,
        seq_len=197,
        products=("scaled_dot_product_attention",),
    )


# Twelve ViT blocks, then two stages of a hybrid with a differently named attention.
SITES = [site(i, f"blocks.{i}.attn") for i in range(12)] + [
    site(12, "stages.0.attn", "WindowAttention"),
    site(13, "stages.1.attn", "WindowAttention"),
]


def rewrite(**selector: object) -> Rewrite:
    """A rewrite selecting by `selector`, spelled as in YAML (`class`, not `class_`)."""
    return Rewrite.model_validate({"select": selector})


def chosen(*rewrites: Rewrite) -> list[int]:
    return [s.index for s, _ in select(SITES, rewrites)]


def test_default_selector_takes_every_site_in_graph_order() -> None:
    assert chosen(rewrite()) == list(range(14))


def test_path_glob() -> None:
    assert chosen(rewrite(path="blocks.1*.attn")) == [1, 10, 11]


def test_path_globs_are_alternatives() -> None:
    assert chosen(rewrite(path=["blocks.3.attn", "stages.*"])) == [3, 12, 13]


def test_path_globs_are_case_sensitive() -> None:
    with pytest.raises(EmptySelection):
        select(SITES, [rewrite(path="Blocks.*")])


def test_class_exact_and_glob() -> None:
    assert chosen(rewrite(**{"class": "WindowAttention"})) == [12, 13]
    assert chosen(rewrite(**{"class": "*Attention"})) == list(range(14))
    assert chosen(rewrite(**{"class": ["Attention"]})) == list(range(12))


def test_class_is_matched_whole_not_as_substring() -> None:
    assert chosen(rewrite(**{"class": "Attention"})) == list(range(12))


def test_layer_ranges_and_lists() -> None:
    assert chosen(rewrite(layers="0-2,5")) == [0, 1, 2, 5]
    assert chosen(rewrite(layers=[13, 4])) == [4, 13]
    assert chosen(rewrite(layers=" 7 - 7 ")) == [7]


def test_layers_beyond_the_last_site_select_nothing() -> None:
    with pytest.raises(EmptySelection):
        select(SITES, [rewrite(layers="14-20")])


def test_exclude_removes_after_every_other_criterion() -> None:
    assert chosen(rewrite(path="blocks.*", exclude=["blocks.1*"])) == [0, *range(2, 10)]
    assert chosen(rewrite(layers="0-3", exclude=["blocks.0.attn", "stages.*"])) == [1, 2, 3]


def test_criteria_are_anded() -> None:
    assert chosen(rewrite(path="blocks.*", layers="10-13")) == [10, 11]
    assert chosen(rewrite(path="*.attn", **{"class": "Window*"}, layers=[0, 13])) == [13]


def test_and_of_disjoint_criteria_is_empty() -> None:
    with pytest.raises(EmptySelection):
        select(SITES, [rewrite(path="stages.*", **{"class": "Attention"})])


def test_matches_agrees_with_select() -> None:
    selector = Selector.model_validate({"path": "blocks.*", "layers": "2-4"})
    assert [s.index for s in SITES if matches(selector, s)] == chosen(Rewrite(select=selector))


def test_last_rewrite_wins_and_order_stays_the_graphs() -> None:
    result = select(SITES, [rewrite(path="blocks.*"), rewrite(layers="3-5"), rewrite(layers=[4])])
    owners = {s.index: owner for s, owner in result}
    assert [s.index for s, _ in result] == list(range(12))
    assert owners == {**dict.fromkeys(range(12), 0), 3: 1, 4: 2, 5: 1}


def test_an_earlier_rewrite_keeps_what_no_later_one_takes() -> None:
    result = select(SITES, [rewrite(layers="0-1"), rewrite(path="stages.*")])
    assert [(s.index, owner) for s, owner in result] == [(0, 0), (1, 0), (12, 1), (13, 1)]


def test_empty_selection_names_the_rewrite_and_lists_the_sites() -> None:
    with pytest.raises(EmptySelection) as caught:
        select(SITES, [rewrite(path="blocks.*"), rewrite(path="block.*.attn")])
    assert isinstance(caught.value, SurgeryError)
    assert caught.value.rewrite_index == 1
    message = str(caught.value)
    assert "matches no attention site" in message
    assert "0:blocks.0.attn (Attention)" in message and "13:stages.1.attn (WindowAttention)" in message


def test_empty_selection_on_a_model_without_sites_says_it_has_no_attention() -> None:
    with pytest.raises(EmptySelection) as caught:
        select([], [rewrite()])
    assert str(caught.value) == "the model has no attention site: nothing in its forward multiplies two activations"


def test_select_does_not_mutate_its_inputs() -> None:
    sites, rewrites = list(SITES), [rewrite(layers="0-1")]
    select(sites, rewrites)
    assert sites == SITES and rewrites == [rewrite(layers="0-1")]


@pytest.mark.parametrize("layers", ["3-1", "a-b", "1,,2", [-1]])
def test_bad_layer_ranges_are_refused_when_the_selector_is_built(layers: object) -> None:
    with pytest.raises(ValidationError):
        Selector.model_validate({"layers": layers})

