"""A chosen mix written as a plain recipe: one rewrite per replaced site, which `surgery apply` runs and a human can diff."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from surgery.errors import SurgeryError
from surgery.recipe import Candidate, Recipe, dump_recipe, recipe_from_data


def mix_recipe(recipe: Recipe, mix: Mapping[str, Candidate], name: str | None = None, *, trainable: bool = True) -> Recipe:
    """`recipe` without its search, rewriting each site of `mix` (site path -> candidate) that does not keep attention.

    Each rewrite selects its site by exact path, so the order of rewrites does not matter and a site no adapter
    fits is refused by `plan`, not skipped. The model, data and hardware stay as they were, and so do the stages
    but those the mix cannot run, which `surgery apply` would refuse: prune stages when no substitute of the mix is
    prunable, distill stages when none has parameters (`trainable` false: every replaced site drops its attention).

    Raises:
        SurgeryError: every site keeps attention (the mix is the teacher), or a candidate still lists keep ratios.
        RecipeError: the result is not a valid recipe (`name` is no folder name).

    Example:
        >>> from surgery.recipe import Substitution, recipe_from_data
        >>> search = {"candidates": ["keep", {"substitute": "conv"}], "budget": {"energy": "0.8x"}}
        >>> searched = recipe_from_data({"name": "r", "model": {"name": "deit_tiny_patch16_224"}, "search": search})
        >>> written = mix_recipe(searched, {"blocks.0.attn": "keep", "blocks.1.attn": Substitution(substitute="conv")})
        >>> written.name, [(rewrite.select.path, rewrite.substitute) for rewrite in written.rewrites]
        ('r_mix', [('blocks.1.attn', 'conv')])
    """
    from far_modules import Prunable, get_substitute  # torch comes with the registry: only when a mix is made

    rewrites = [_rewrite(path, candidate) for path, candidate in mix.items() if candidate != "keep"]
    if not rewrites:
        raise SurgeryError("every site of the mix keeps its attention: that is the teacher, with nothing to rewrite")
    prunable = any(issubclass(get_substitute(rewrite["substitute"]), Prunable) for rewrite in rewrites)
    unrunnable = {"prune"} if not prunable else set()
    unrunnable |= {"distill"} if not trainable else set()
    data = recipe.model_dump(mode="json", by_alias=True, exclude={"extends", "search"})
    stages = [stage for stage in data["stages"] if stage["kind"] not in unrunnable]
    return recipe_from_data({**data, "name": name or f"{recipe.name}_mix", "rewrites": rewrites, "stages": stages})


def write_mix_recipe(recipe: Recipe, mix: Mapping[str, Candidate], folder: Path, name: str | None = None) -> Path:
    """Writes `mix_recipe` whole (extends resolved, defaults filled in) as `folder/<name>.yaml`, atomically; returns its path."""
    return save_recipe(mix_recipe(recipe, mix, name), folder)


def save_recipe(recipe: Recipe, folder: Path) -> Path:
    """`recipe` whole as `folder/<name>.yaml`, atomically; returns its path."""
    from surgery.train.checkpoint import write_text_atomic  # torch comes with it: only when a file is written

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{recipe.name}.yaml"
    write_text_atomic(path, dump_recipe(recipe))
    return path


def _rewrite(path: str, candidate: Candidate) -> dict[str, object]:
    if candidate.keep_ratios is not None:
        raise SurgeryError(f"site {path}: {candidate.substitute} with keep ratios {candidate.keep_ratios} is a set of options; give the one chosen as its params")
    return {"select": {"path": path}, "substitute": candidate.substitute, "params": dict(candidate.params)}
