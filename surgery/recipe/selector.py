"""Selectors: which attention sites a rewrite (or a search) applies to, as a recipe writes them."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from surgery.recipe.ranges import parse_layers
from surgery.recipe.strict import StrictModel


class SparsityCriterion(StrictModel):
    """Keep the densest sites as attention and replace the rest, by attention sparsity measured on validation data.

    "From Sparsity to Simplicity": layers whose attention rows are sparse lose least when replaced.
    """

    metric: Literal["entropy", "top_mass", "hoyer"] = "entropy"
    """How sparsity is measured (see `surgery analyze`): low entropy, high top mass or high Hoyer is sparse."""
    keep_dense: int | float = Field(ge=0)
    """Sites left as attention, densest first: a count (2) or a fraction of the matched sites (0.5)."""

    @field_validator("keep_dense")
    @classmethod
    def _valid_share(cls, keep: int | float) -> int | float:
        if isinstance(keep, float) and not keep < 1:
            raise ValueError(f"a fraction must be below 1 (a count is an integer), got {keep}")
        return keep


class Selector(StrictModel):
    """Which attention sites a rewrite applies to.

    Criteria inside one selector are AND-ed; when several rewrites select the
    same site, the last one wins.
    """

    model_config = ConfigDict(validate_by_name=True)

    path: str | list[str] = "*"
    """fnmatch globs on the site's module path; a site matches if any glob does."""
    class_: str | list[str] | None = Field(None, alias="class")
    """Class name of the site's module, exact or glob; none accepts any class."""
    layers: str | list[int] | None = None
    """Indices of sites in graph order: "0-5,8" or a list of ints; none accepts all."""
    exclude: list[str] = []
    """Globs on the module path removed after every other criterion."""
    sparsity: SparsityCriterion | None = None
    """Among the sites the other criteria match, replace only the sparsest (measured when `surgery apply` reaches the rewrite)."""

    @field_validator("layers")
    @classmethod
    def _valid_layers(cls, layers: str | list[int] | None) -> str | list[int] | None:
        if layers is not None:
            parse_layers(layers)
        return layers
