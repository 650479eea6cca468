"""Plan, then apply: everything that can be checked before touching a weight is checked here.

`plan` traces, detects, selects and test-builds every substitute on the meta
device; it mutates nothing and returns an immutable `Plan`. A site no adapter
fits is refused when a selector names it by its exact path, and skipped, with
its reason in `Plan.skipped`, when a glob matched it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import torch
from torch import nn

from far_modules import SiteSpec, UnknownNameError, build_substitute
from surgery.detect.sites import Site, find_sites
from surgery.errors import SurgeryError
from surgery.graph.shaped import ShapedGraphs
from surgery.models import ModelFieldError, example_input, input_size
from surgery.recipe.schema import Recipe, Selector
from surgery.rewrite.select import EmptySelection, Sparsity, SparsityUnknown, select
from surgery.rewrite.token_order import TokenOrder


@dataclass(frozen=True)
class Step:
    """Replace one site with one substitute."""

    site: Site
    substitute: str
    params: dict[str, object] = field(hash=False)
    rewrite_index: int
    token_order: TokenOrder = "raster"


@dataclass(frozen=True)
class Skip:
    """A site a wildcard selector matched and no adapter fits: left as attention, with the reason."""

    path: str
    reason: str


@dataclass(frozen=True)
class Plan:
    """The whole surgery as data: what the model is, what was found, what will change."""

    model: str
    input_size: tuple[int, ...]
    """One example's size: (C, H, W), or (N,) tokens for a text model."""
    seed: int
    sites: tuple[Site, ...]
    steps: tuple[Step, ...]
    skipped: tuple[Skip, ...] = ()

    @property
    def selected_paths(self) -> list[str]:
        return [step.site.path for step in self.steps]

    @property
    def site_paths(self) -> list[str]:
        """Every site found, selected or not: the leaves of the graphs that check, count and price the models."""
        return [site.path for site in self.sites]

    @property
    def block_paths(self) -> list[str]:
        return block_paths(self.selected_paths)


def plan(recipe: Recipe, model: nn.Module, sparsity: Sparsity | None = None, graphs: ShapedGraphs | None = None) -> Plan:
    """Find and select the sites of `model` (built from `recipe.model`) and check every substitute.

    `sparsity` (site path -> measure -> value) is needed by selectors that rank sites by it; `graphs` keeps the
    model's trace with its sites as leaves, for the shape check, counting and pricing after.

    Example:
        >>> from surgery import build_model, load_recipe
        >>> recipe = load_recipe("recipes/deit_far.yaml")
        >>> len(plan(recipe, build_model(recipe.model.name, device="meta")).steps)
        12
    """
    try:
        size = input_size(model, recipe.model.input_size)
    except ModelFieldError as error:
        raise _located(recipe, ("model", *error.field), str(error)) from error
    try:
        sites = find_sites(model, example_input(model, size), graphs)
    except SurgeryError as error:  # the model as the recipe builds it does not trace or run at this size
        raise _located(recipe, ("model",), f"{recipe.model.name} at input {size}: {error}") from error
    try:
        chosen = select(sites, recipe.rewrites, sparsity)
    except EmptySelection as error:
        raise _located(recipe, ("rewrites", error.rewrite_index, "select"), str(error)) from error
    except SparsityUnknown as error:
        raise _located(recipe, ("rewrites", error.rewrite_index, "select", "sparsity"), str(error)) from error
    steps, skipped, built = [], [], set()
    for site, index in chosen:
        reason = _unadaptable(model, site)
        if reason and not _names(recipe.rewrites[index].select, site):
            skipped.append(Skip(site.path, reason))
        else:
            steps.append(_step(recipe, model, site, index, built))
    if skipped and not steps:
        raise _located(recipe, ("rewrites",), f"no selected site can be adapted: {'; '.join(skip.reason for skip in skipped)}")
    return Plan(recipe.model.name, size, recipe.seed, tuple(sites), tuple(steps), tuple(skipped))


def block_paths(sites: Collection[str]) -> list[str]:
    """The blocks holding the sites: each site's parent module (`blocks.3.attn` -> `blocks.3`), in order."""
    return list(dict.fromkeys(path.rpartition(".")[0] or path for path in sites))


def site_spec(site: Site) -> SiteSpec:
    """The shapes a substitute is built from."""
    out_dim = site.contract.out_dim if site.contract else None
    return SiteSpec(dim=site.dim, num_heads=site.num_heads, head_dim=site.head_dim, seq_len=site.seq_len, out_dim=out_dim)


def _step(recipe: Recipe, model: nn.Module, site: Site, rewrite_index: int, built: set[tuple[object, ...]]) -> Step:
    """The site's step, its substitute test-built on the meta device unless `built` holds one of the same rewrite,
    shapes, source class and source parameters (a ViT's 40 identical blocks need one build, not 40)."""
    rewrite = recipe.rewrites[rewrite_index]
    where = ("rewrites", rewrite_index)
    reason = _unadaptable(model, site)
    if reason:
        raise _located(recipe, (*where, "select"), reason)
    if rewrite.token_order != "raster" and site.contract.inline_input is not None:
        raise _located(recipe, (*where, "token_order"), f"site {site.path} computes attention inline in its block; only raster order is supported there")
    if rewrite.token_order != "raster" and site.contract.grid is None and "grid" not in site.contract.roles.values():
        raise _located(recipe, (*where, "token_order"), f"token order {rewrite.token_order!r} needs a 2-D token grid; site {site.path} has none")
    source = model.get_submodule(site.path)
    kind = (rewrite_index, site_spec(site), type(source), tuple((name, p.shape) for name, p in source.named_parameters()))
    try:
        if kind not in built:
            with torch.device("meta"):
                build_substitute(rewrite.substitute, site_spec(site), source, **rewrite.params)
            built.add(kind)
    except UnknownNameError as error:
        raise _located(recipe, (*where, "substitute"), str(error)) from error
    except (TypeError, ValueError) as error:
        raise _located(recipe, (*where, "params"), f"substitute {rewrite.substitute!r} at site {site.path}: {error}") from error
    return Step(site, rewrite.substitute, dict(rewrite.params), rewrite_index, rewrite.token_order)


def _unadaptable(model: nn.Module, site: Site) -> str | None:
    """Why no adapter fits `site`, or None when one does."""
    if site.contract is None:
        return f"{_family(model)} site {site.path} ({site.class_name}) cannot be adapted: {site.refusal}"
    if site.unsupported_extras:
        return (
            f"{_family(model)} site {site.path} ({site.class_name}) is called with {', '.join(site.unsupported_extras)}, "
            "which no adapter knows how to pass on or leave out"
        )
    return None


def _names(selector: Selector, site: Site) -> bool:
    """Whether `selector` names `site` by its exact path (no glob): a site the user asked for by name."""
    paths = [selector.path] if isinstance(selector.path, str) else selector.path
    return site.path in paths and not any(char in site.path for char in "*?[")


def _family(model: nn.Module) -> str:
    """The timm family of a model, from its module (`timm.models.swin_transformer` -> `swin_transformer`)."""
    return type(model).__module__.rpartition(".")[2]


def _located(recipe: Recipe, path: tuple[str | int, ...], message: str) -> SurgeryError:
    location = recipe.location_of(path)
    return SurgeryError(f"{location}: {message}" if location else message)
