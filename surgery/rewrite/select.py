"""Selection: which detected sites each rewrite applies to.

Criteria inside one selector are AND-ed (path glob, class, layer indices, then
`exclude` removes, then `sparsity` keeps only the sparsest); when several
rewrites select the same site, the last one wins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase

from surgery.detect.sites import Site
from surgery.errors import SurgeryError
from surgery.recipe.ranges import parse_layers
from surgery.recipe.schema import Rewrite
from surgery.recipe.selector import Selector, SparsityCriterion


class EmptySelection(SurgeryError):
    """A rewrite's selector matched no site; the message lists the sites that exist."""

    def __init__(self, rewrite_index: int, sites: Sequence[Site]) -> None:
        self.rewrite_index = rewrite_index
        if not sites:
            super().__init__("the model has no attention site: nothing in its forward multiplies two activations")
            return
        listing = ", ".join(f"{s.index}:{s.path} ({s.class_name})" for s in sites)
        super().__init__(f"selector matches no attention site; sites are {listing}")


class SparsityUnknown(SurgeryError):
    """A selector ranks sites by attention sparsity, and none was measured."""

    def __init__(self, rewrite_index: int) -> None:
        self.rewrite_index = rewrite_index
        super().__init__(
            "sites are chosen by attention sparsity measured on the trained teacher and validation data: `surgery apply` "
            "measures it when it reaches the rewrite (`surgery analyze` shows the ranking); nothing to measure here"
        )


Sparsity = Mapping[str, Mapping[str, float]]
"""Site path -> measure -> mean over rows and heads (`surgery.detect.sparsity`)."""


def select(sites: Sequence[Site], rewrites: Sequence[Rewrite], sparsity: Sparsity | None = None) -> list[tuple[Site, int]]:
    """(site, index of the rewrite that takes it) for every selected site, in graph order.

    Raises:
        EmptySelection: a rewrite selects nothing (a typo in a glob should never pass silently).
        SparsityUnknown: a rewrite selects by sparsity and `sparsity` is None.
    """
    owner: dict[int, int] = {}
    for rewrite_index, rewrite in enumerate(rewrites):
        matched = [site for site in sites if matches(rewrite.select, site)]
        criterion = rewrite.select.sparsity
        if criterion is not None:
            if sparsity is None:
                raise SparsityUnknown(rewrite_index)
            matched = sparsest(matched, criterion, sparsity)
        if not matched:
            raise EmptySelection(rewrite_index, sites)
        owner.update((site.index, rewrite_index) for site in matched)
    return [(site, owner[site.index]) for site in sites if site.index in owner]


def matches(selector: Selector, site: Site) -> bool:
    """Whether `site` passes every criterion of `selector`."""
    return (
        _any_glob(selector.path, site.path)
        and (selector.class_ is None or _any_glob(selector.class_, site.class_name))
        and (selector.layers is None or site.index in parse_layers(selector.layers))
        and not _any_glob(selector.exclude, site.path)
    )


def sparsest(sites: Sequence[Site], criterion: SparsityCriterion, sparsity: Sparsity) -> list[Site]:
    """`sites` without the `keep_dense` densest by `criterion.metric`, in their own order."""
    sign = 1 if criterion.metric == "entropy" else -1  # low entropy, high top mass and high Hoyer are sparse
    ranked = sorted(sites, key=lambda site: sign * sparsity[site.path][criterion.metric])
    keep = criterion.keep_dense if isinstance(criterion.keep_dense, int) else round(criterion.keep_dense * len(sites))
    chosen = {site.path for site in ranked[: max(len(ranked) - keep, 0)]}
    return [site for site in sites if site.path in chosen]


def _any_glob(patterns: str | Sequence[str], name: str) -> bool:
    return any(fnmatchcase(name, p) for p in ([patterns] if isinstance(patterns, str) else patterns))
