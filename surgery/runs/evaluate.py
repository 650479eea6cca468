"""`surgery evaluate DIR`: re-measure a finished run from its files alone (a fresh process, no pickles)."""

from __future__ import annotations

from surgery.data import build_val_loader
from surgery.errors import SurgeryError
from surgery.measure.counting import count
from surgery.models import input_size
from surgery.recipe import load_recipe
from surgery.runs.replay import load_run
from surgery.runs.rundir import RunDir
from surgery.train.distributed import init_distributed
from surgery.train.evaluation import top1


def evaluate_run(run: RunDir, batch_size: int = 256) -> dict[str, dict[str, float]]:
    """Top-1 on the recipe's validation split, params and MACs of the run's teacher and student."""
    recipe = load_recipe(run.recipe)
    if recipe.data is None:
        raise SurgeryError(f"{run.root}: the run's recipe has no data section to evaluate on")
    ctx = init_distributed("cpu")
    results = {}
    for which in ("teacher", "student"):
        model = load_run(run.root, which=which)
        size = input_size(model, recipe.model.input_size)
        val = build_val_loader(recipe.data, size, batch_size, seed=recipe.seed, model=model)
        counts = count(model, size)
        results[which] = {"top1": top1(model, val, ctx), "params": counts.params, "macs": counts.macs}
    return results
