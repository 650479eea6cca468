"""Semantic checks of a validated recipe that need no model built: names timm and the registry must know.

timm and the substitute registry (both import torch) load when a check runs, not when recipes are imported:
reading, dumping and describing recipes (`surgery schema`) stays free of torch.

A transformers model's name (a directory, a hub id or the packaged alias) is checked when it is built.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from surgery.errors import Problem, RecipeError, SurgeryError
from surgery.recipe.data import WikiData
from surgery.recipe.hardware import hardware_problems
from surgery.recipe.problems import did_you_mean
from surgery.recipe.schema import Recipe, Rewrite
from surgery.recipe.stages import DistillStage, EvaluateStage, FinetuneStage, FitStage, HaltStage, Stage
from surgery.recipe.tree import KeyPath


def check_recipe(recipe: Recipe) -> None:
    """Refuses a recipe naming an unknown timm model, substitute or option, a missing checkpoint, or a bad device.

    Raises:
        RecipeError: every problem found, each at the place in the file it concerns.

    Example:
        >>> check_recipe(load_recipe("recipes/quickstart.yaml"))  # doctest: +SKIP
    """
    problems = [*_model_problems(recipe)]
    for index, rewrite in enumerate(recipe.rewrites):
        problems += _rewrite_problems(recipe, index, rewrite)
    problems += _search_problems(recipe)
    problems += hardware_problems(recipe)
    if problems:
        raise RecipeError(problems)


def refuse_search(recipe: Recipe, command: str) -> None:
    """A recipe with a search section says what to search, not what to rewrite: `command` would drop the search unseen.

    Raises:
        SurgeryError: at the search section, saying how to search and apply the mix.
    """
    if recipe.search is None:
        return
    where = recipe.location_of(("search",))
    message = (f"recipe {recipe.name!r} has a search section, which {command} does not run: run `surgery search RECIPE --out DIR`, "
               f"then `surgery {command} DIR/{recipe.name}_mix.yaml` (the chosen mix as plain rewrites)")
    raise SurgeryError(f"{where}: {message}" if where else message)


def _model_problems(recipe: Recipe) -> Iterator[Problem]:
    spec = recipe.model
    if spec.source == "timm" and not _is_timm_model(spec.name):
        architecture = spec.name.split(".", 1)[0]
        import timm

        hint = did_you_mean(architecture, timm.list_models()) or "; see timm.list_models()"
        yield Problem(recipe.location_of(("model", "name")), f"model.name: unknown timm model {spec.name!r}{hint}")
    yield from _kind_problems(recipe)
    if spec.checkpoint is not None and not spec.checkpoint.is_file():
        yield Problem(recipe.location_of(("model", "checkpoint")), f"model.checkpoint: no file at {spec.checkpoint}")


def _kind_problems(recipe: Recipe) -> Iterator[Problem]:
    """Images for a timm model, text for a transformers encoder; and only the stages and metrics that make sense for it."""
    text = recipe.model.source == "transformers"
    if recipe.data is not None and isinstance(recipe.data, WikiData) != text:
        reads = "token ids (data kind wiki)" if text else "images (data kinds folder, digits, synthetic)"
        yield Problem(recipe.location_of(("data", "kind")), f"data.kind: {recipe.data.kind} does not fit a {recipe.model.source} model, which reads {reads}")
    for index, stage in enumerate(recipe.stages):
        for key, message in [*_stage_misfits(stage, text), *_unpaired_pruning(stage)]:
            yield Problem(recipe.location_of(("stages", index, key)), f"stages.{index}.{key}: {message}")


def _stage_misfits(stage: Stage, text: bool) -> Iterator[tuple[str, str]]:
    if text and isinstance(stage, FitStage):
        yield "kind", "fit trains a classifier from scratch; a text encoder comes pretrained (model.pretrained: true)"
    if text and isinstance(stage, HaltStage):
        yield "kind", "halt stops image tokens in a timm ViT's blocks; a text encoder's blocks do not halt"
    if text and isinstance(stage, FinetuneStage) and stage.kd is not None:
        yield "kd", "KD reads logits; a text encoder's finetune already pulls its sentence embedding to the teacher's"
    if isinstance(stage, EvaluateStage) and stage.metrics is not None:
        misfits = set(stage.metrics) & ({"top1"} if text else {"embedding", "latency"})
        if misfits:
            kind = "a text encoder has no classifier (embedding measures it)" if text else "embedding and latency measure text encoders (images: surgery bench)"
            yield "metrics", f"{', '.join(sorted(misfits))}: {kind}"


def _unpaired_pruning(stage: Stage) -> Iterator[tuple[str, str]]:
    """A distill stage prunes with both a Hoyer weight and a threshold, or with neither.

    A threshold alone would cut a model no penalty has sparsified; a penalty alone would leave its small units in place.
    """
    if not isinstance(stage, DistillStage) or bool(stage.hoyer_weight) == (stage.threshold is not None):
        return
    if stage.threshold is not None:
        yield "threshold", "removes the units a Group-HS penalty has made small; set hoyer_weight > 0 as well, or drop threshold"
    else:
        yield "hoyer_weight", "sparsifies units for a threshold to remove; set threshold as well (prune does both in a stage of its own)"


def _is_timm_model(name: str) -> bool:
    """A timm architecture, with or without a pretrained tag; "hf-hub:" style sources are checked when built."""
    import timm

    return ":" in name or timm.is_model(name.split(".", 1)[0])


def _rewrite_problems(recipe: Recipe, index: int, rewrite: Rewrite) -> Iterator[Problem]:
    yield from _substitute_problems(recipe, ("rewrites", index), rewrite.substitute, rewrite.params)


def _search_problems(recipe: Recipe) -> Iterator[Problem]:
    """Each searched substitute is checked as a rewrite's is; keep ratios only where there are hidden units to prune."""
    from far_modules import Prunable, get_substitute

    for index, candidate in enumerate(recipe.search.candidates if recipe.search else []):
        if isinstance(candidate, str):
            continue
        where = ("search", "candidates", index)
        problems = list(_substitute_problems(recipe, where, candidate.substitute, candidate.params))
        yield from problems
        if not problems and candidate.keep_ratios and not issubclass(get_substitute(candidate.substitute), Prunable):
            message = f"{candidate.substitute} has no hidden units to prune; drop keep_ratios"
            yield Problem(recipe.location_of((*where, "keep_ratios")), f"{_dotted(where)}.keep_ratios: {message}")


def _substitute_problems(recipe: Recipe, where: KeyPath, substitute: str, params: Mapping[str, object]) -> Iterator[Problem]:
    """An unknown substitute (with its close names), or options its from_site does not take."""
    from far_modules import substitute_options
    from far_modules.registry import UnknownNameError

    try:
        options = substitute_options(substitute)
    except UnknownNameError as error:
        yield Problem(recipe.location_of((*where, "substitute")), f"{_dotted(where)}.substitute: {error}")
        return
    accepted = ", ".join(options) or "none"
    for key in params:
        if key not in options:
            message = f"{substitute} takes no option {key!r}{did_you_mean(key, list(options))}; accepted: {accepted}"
            yield Problem(recipe.location_of((*where, "params", key)), f"{_dotted(where)}.params.{key}: {message}")


def _dotted(where: KeyPath) -> str:
    return ".".join(map(str, where))
