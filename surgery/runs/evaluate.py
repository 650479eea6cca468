"""`surgery evaluate DIR`: re-measure a finished run from its files alone (a fresh process, no pickles)."""

from __future__ import annotations

from functools import partial
from typing import Literal

from torch import nn
from torch.utils.data import DataLoader, Subset

from surgery.data import build_val_loader
from surgery.errors import SurgeryError
from surgery.measure.counting import count
from surgery.models import input_size, takes_tokens
from surgery.recipe import load_recipe
from surgery.runs.replay import load_run
from surgery.runs.rundir import RunDir
from surgery.train.distributed import init_distributed
from surgery.train.evaluation import embedding_report, tokens_run, top1, top1_following


def validation_loader(
    run: RunDir, model: nn.Module, batch_size: int, images: int | None = None, split: Literal["train", "val"] = "val"
) -> DataLoader:
    """The run's validation split (or its training split, for a probe) in a fixed order, or its first `images`.

    Raises:
        SurgeryError: the run's recipe has no data section.
    """
    recipe = load_recipe(run.recipe)
    if recipe.data is None:
        raise SurgeryError(f"{run.root}: the run's recipe has no data section to evaluate on")
    size = input_size(model, recipe.model.input_size)
    loader = build_val_loader(recipe.data, size, batch_size, seed=recipe.seed, model=model, split=split)
    if images is None or images >= len(loader.dataset):
        return loader
    return DataLoader(Subset(loader.dataset, range(images)), batch_size=batch_size, num_workers=loader.num_workers, collate_fn=loader.collate_fn)


def evaluate_run(run: RunDir, batch_size: int = 256) -> dict[str, dict[str, float]]:
    """Top-1 on the recipe's validation split, params and MACs of the run's teacher and student; a text encoder's
    embedding cosine, linear-probe top-1 and neighbour overlap to its teacher in place of top-1. A transfer's teacher
    (`model.from_run`) has no top-1: its classifier was never trained on this data. A halting run adds the tokens each
    model runs and the student's top-1 on its teacher's tokens."""
    recipe = load_recipe(run.recipe)
    ctx = init_distributed("cpu")
    teacher = load_run(run.root, which="teacher")
    size = input_size(teacher, recipe.model.input_size)
    loader = partial(validation_loader, run, teacher, batch_size)
    results = {}
    for which, model in (("teacher", teacher), ("student", load_run(run.root))):
        counts = count(model, size)
        if takes_tokens(model):
            measured = embedding_report(model, teacher, loader(), loader(split="train"), ctx)
        elif which == "teacher" and recipe.model.from_run is not None:  # a transfer's teacher: its source's, with a new, untrained classifier
            measured = {}
        else:
            measured = {"top1": top1(model, loader(), ctx)}
        tokens = tokens_run(model, loader(), ctx)
        if tokens is not None:  # a halting run: the tokens each model runs, and the student on its teacher's tokens
            measured["tokens_run"] = tokens
            if which == "student":
                measured["top1_on_teacher_tokens"] = top1_following(model, teacher, loader(), ctx)
        results[which] = {**measured, "params": counts.params, "macs": counts.macs}
    return results
