"""What each searched site may become: the search's candidates expanded into named options.

A candidate with keep ratios is one option per ratio. A ratio becomes the substitute's `hidden_size` at each
site (that share of the units it would have at full width), so every option is a plain rewrite a recipe can hold.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from far_modules import Prunable, build_substitute, substitute_options
from surgery.detect.sites import Site
from surgery.errors import SurgeryError
from surgery.recipe import Candidate, Recipe, Search, Substitution
from surgery.rewrite.plan import site_spec

KEEP = "keep"


@dataclass(frozen=True)
class SearchOption:
    """One thing a site may become, named as reports and the front show it."""

    label: str
    """`keep`, `conv`, `conv(kernel_size=3)`, `bilstm@0.5`: the substitute, its params, and its keep ratio."""
    candidate: Candidate
    """The candidate as written, without its keep ratios."""
    index: int
    """Its place in `search.candidates`: where a refusal of it points."""
    keep_ratio: float | None = None

    @property
    def keeps(self) -> bool:
        return self.candidate == KEEP

    def to_json(self) -> dict[str, object]:
        if self.keeps:
            return {"substitute": KEEP}
        assert isinstance(self.candidate, Substitution)
        return {"substitute": self.candidate.substitute, "params": dict(self.candidate.params), "keep_ratio": self.keep_ratio}


def search_options(search: Search) -> list[SearchOption]:
    """The options in candidate order, each keep ratio its own option.

    Example:
        >>> from surgery.recipe import Search
        >>> search = Search(candidates=["keep", {"substitute": "conv", "params": {"kernel_size": 3}}, {"substitute": "bilstm", "keep_ratios": [1, 0.5]}],
        ...                 budget={"energy": "0.8x"})
        >>> [option.label for option in search_options(search)]
        ['keep', 'conv(kernel_size=3)', 'bilstm@1', 'bilstm@0.5']
    """
    options = []
    for index, candidate in enumerate(search.candidates):
        if candidate == KEEP:
            options.append(SearchOption(KEEP, KEEP, index))
            continue
        assert isinstance(candidate, Substitution)
        written = candidate.model_copy(update={"keep_ratios": None})
        label = _label(candidate)
        if candidate.keep_ratios is None:
            options.append(SearchOption(label, written, index))
        else:
            options += [SearchOption(f"{label}@{ratio:g}", written, index, ratio) for ratio in candidate.keep_ratios]
    return options


def _label(candidate: Substitution) -> str:
    params = ",".join(f"{key}={value if isinstance(value, str) else json.dumps(value)}" for key, value in sorted(candidate.params.items()))
    return f"{candidate.substitute}({params})" if params else candidate.substitute


def site_candidate(option: SearchOption, site: Site, source: nn.Module) -> Candidate:
    """What `option` writes at `site` (whose module is `source`): the candidate, its keep ratio made a hidden size.

    Raises:
        SurgeryError: a keep ratio on a substitute that has no `hidden_size` option or no hidden units.
    """
    if option.keep_ratio is None:
        return option.candidate
    assert isinstance(option.candidate, Substitution)
    name, params = option.candidate.substitute, option.candidate.params
    full = build_substitute(name, site_spec(site), source, **params)
    if "hidden_size" not in substitute_options(name) or not isinstance(full, Prunable):
        raise SurgeryError(f"search option {option.label}: {name} has no hidden_size to shrink by a keep ratio; drop keep_ratios")
    width = max(group.size for group in full.unit_groups())
    return option.candidate.model_copy(update={"params": {**params, "hidden_size": max(1, round(option.keep_ratio * width))}})


def site_candidates(recipe: Recipe, options: Sequence[SearchOption], sites: Mapping[str, Site], model: nn.Module) -> dict[str, dict[str, Candidate]]:
    """Site path -> option label -> what the option writes there (`site_candidate`), each test-built on the meta device,
    so params its substitute rejects at a site are refused at the candidate's line before anything is priced or trained."""
    resolved: dict[str, dict[str, Candidate]] = {}
    for path, site in sites.items():
        source, resolved[path] = model.get_submodule(path), {}
        for option in options:
            try:
                candidate = resolved[path][option.label] = site_candidate(option, site, source)
                if isinstance(candidate, Substitution):
                    with torch.device("meta"):
                        build_substitute(candidate.substitute, site_spec(site), source, **candidate.params)
            except (TypeError, ValueError) as error:
                where = recipe.location_of(("search", "candidates", option.index, "params"))
                raise SurgeryError(f"{where or 'search.candidates'}: {option.label} at site {path}: {error}") from error
    return resolved


def trains(candidate: Candidate, site: Site, source: nn.Module) -> bool:
    """Whether `candidate` at `site` has parameters to distill (dropping attention has none)."""
    if candidate == KEEP:
        return True
    assert isinstance(candidate, Substitution)
    return any(True for _ in build_substitute(candidate.substitute, site_spec(site), source, **candidate.params).parameters())


def searched(recipe: Recipe) -> Search:
    """The recipe's search section, or an error saying the recipe has none."""
    if recipe.search is None:
        raise SurgeryError(f"recipe {recipe.name!r} has no search section: add one (candidates and a budget) to search it")
    return recipe.search
