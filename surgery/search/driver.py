"""`surgery search RECIPE --out DIR`: price and predict every option at every searched site, solve, write the mix.

The teacher is trained by the recipe's teacher stages (or built with its weights), each option is priced and
distilled in a uniform student, and all of it is cached in DIR (`surgery.search.cache`): a second search with
another budget only solves. The chosen mix is written as DIR/<name>.yaml, a plain recipe for `surgery apply`.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from surgery.data import build_loaders
from surgery.deploy.machine import machine
from surgery.detect.sparsity import METRICS as SPARSITY_METRICS
from surgery.detect.sparsity import measure_sites
from surgery.errors import SurgeryError
from surgery.models import input_size, recipe_model, takes_tokens
from surgery.recipe import METRICS, TEACHER_STAGES, Candidate, Recipe, Search, check_recipe, recipe_from_data
from surgery.rewrite.plan import Plan, plan
from surgery.rewrite.student import build_student
from surgery.runs.rundir import RunDir
from surgery.runs.stages import run_stage, stage_label
from surgery.runs.state import RunState
from surgery.search.cache import cache_key, read_cached, write_cached
from surgery.search.costs import CostTable, cost_table
from surgery.search.mix_recipe import mix_recipe, save_recipe
from surgery.search.options import SearchOption, search_options, searched, site_candidates, trains
from surgery.search.plot import plot_front
from surgery.search.predictor import Losses, OptionScores, Predictor, site_scores
from surgery.search.solver import Mix, Option, choose, pareto_front
from surgery.train.checkpoint import load_weights_into, save_model_atomic, seed_everything, write_text_atomic
from surgery.train.distributed import DistContext
from surgery.train.engine import console
from surgery.train.metrics import MetricsLog
from surgery.train.objectives import TaskLoss

CACHE = "cache"


@dataclass(frozen=True)
class SearchResult:
    """A finished search: the front, the chosen mix and the uniform choices, with what every figure came from."""

    recipe: Recipe
    axis: str
    budget: dict[str, float]
    options: list[SearchOption]
    candidates: dict[str, dict[str, Candidate]]
    """Site path -> option label -> what the option writes there (keep ratios made hidden sizes)."""
    trainable: dict[str, bool]
    """Option label -> whether it has parameters to distill."""
    costs: CostTable
    scores: dict[str, Losses]
    """Every predictor score (`surgery.search.predictor.SCORES`) of every option at every site; the recipe's is `losses`."""
    sparsity: dict[str, dict[str, float]] | None
    front: list[Mix]
    chosen: Mix
    recipe_path: Path
    teacher_top1: float | None
    timing: dict[str, Any]

    @property
    def losses(self) -> Losses:
        """The predicted loss the solver used: the recipe's `search.predictor.score`."""
        return self.scores[self.recipe.search.predictor.score]

    @property
    def uniform(self) -> dict[str, Mix]:
        """Every site the same option, for each substitute option: the choices a search must beat."""
        sites = list(self.costs.sites)
        return {option.label: self._mix({path: option.label for path in sites}) for option in self.options if not option.keeps}

    def mix_recipe(self, mix: Mix, name: str | None = None) -> Recipe:
        """`mix` as a plain recipe (`surgery.search.mix_recipe`), without the stages it could not run."""
        trainable = any(self.trainable[label] for label in mix.sites.values() if label != "keep")
        return mix_recipe(self.recipe, {path: self.candidates[path][label] for path, label in mix.sites.items()}, name, trainable=trainable)

    def write_mix(self, mix: Mix, folder: Path, name: str) -> Path:
        """`mix_recipe(mix, name)` written as folder/<name>.yaml."""
        return save_recipe(self.mix_recipe(mix, name), folder)

    def dropped_stages(self, mix: Mix) -> list[str]:
        """The recipe's stages `mix`'s recipe leaves out, which apply would refuse."""
        written = self.mix_recipe(mix)
        return [stage_label(stage, index) for index, stage in enumerate(self.recipe.stages) if stage not in written.stages]

    def fits(self, mix: Mix) -> bool:
        return all(mix.cost[metric] <= limit * (1 + 1e-9) for metric, limit in self.budget.items())

    def _mix(self, sites: dict[str, str]) -> Mix:
        return Mix(sites, sum(self.losses[path][label] for path, label in sites.items()), self.costs.mix_cost(sites))

    def to_json(self) -> dict[str, Any]:
        """The front (cheapest first in the axis), the chosen mix and its recipe, the uniform choices and the tables."""
        sites = {
            path: {
                "sparsity": self.sparsity.get(path) if self.sparsity else None,
                "options": {
                    label: {"predicted": self.losses[path][label], "scores": {score: self.scores[score][path][label] for score in self.scores}, "cost": cost}
                    for label, cost in by_option.items()
                },
            }
            for path, by_option in self.costs.sites.items()
        }
        return {
            "axis": self.axis,
            "score": self.recipe.search.predictor.score,
            "budget": self.budget,
            "front": [_mix_json(mix) for mix in self.front],
            "chosen": {**_mix_json(self.chosen), "recipe": str(self.recipe_path), "dropped_stages": self.dropped_stages(self.chosen)},
            "uniform": {label: {**_mix_json(mix), "fits": self.fits(mix)} for label, mix in self.uniform.items()},
            "teacher": {"cost": self.costs.teacher, "top1": self.teacher_top1},
            "base": self.costs.base,
            "options": {option.label: option.to_json() for option in self.options},
            "sites": sites,
            "timing": self.timing,
        }


def _mix_json(mix: Mix) -> dict[str, Any]:
    return {"sites": mix.sites, "predicted": mix.loss, "cost": mix.cost}


def run_search(recipe: Recipe, out: Path, *, name: str | None = None, force: bool = False, device: str = "cpu") -> SearchResult:
    """Search `recipe` (which must have a `search` section) into `out`; returns the result, also written as out/search.json
    and drawn as out/front.png.

    Raises:
        SurgeryError: no data, no substitute to choose from, a recipe starting from a finished run, a halt stage, two
            searched sites in one block, no mix in the budget, a budget only the teacher meets, or out/<name>.yaml there
            already (without `force`).
    """
    search = searched(recipe)
    check_recipe(recipe)
    options = search_options(search)
    _refuse_unsearchable(recipe, options)
    target = out / f"{mix_recipe_name(recipe, name)}.yaml"
    if target.exists() and not force:
        raise SurgeryError(f"{target} exists: pass --force to replace it, or --name to write the mix under another name")
    phases = _Phases()
    with phases("teacher") as phase:
        teacher, teacher_key, teacher_top1, phase.cached = _teacher(recipe, out / CACHE, device)
    size = input_size(teacher, recipe.model.input_size)
    with phases("sparsity"):
        sparsity = _sparsity(recipe, teacher, size)
    sites_plan = _sites(recipe, search, options, teacher, sparsity)
    sites = {step.site.path: step.site for step in sites_plan.steps}
    candidates = site_candidates(recipe, options, sites, teacher)
    students = _Students(recipe, options, candidates, teacher)
    metrics = [metric for metric in METRICS if metric != "cpu_latency" or metric in {*search.budget.limits(), search.front_axis}]
    with phases("costs") as phase:
        costs, phase.cached = _costs(recipe, out / CACHE, options, sites_plan, students, size, metrics)
    budget, axis = search.budget.resolve(costs.teacher), search.front_axis
    _check_reachable(recipe, options, costs, budget)
    with phases("predictor") as phase:
        scores, phase.cached = _scores(recipe, search, out / CACHE, teacher_key, options, sites_plan, students, size)
    with phases("solve"):
        table = _options_at(scores[search.predictor.score], options, costs)
        front = pareto_front(table, axis, {metric: limit for metric, limit in budget.items() if metric != axis}, costs.base)
        chosen = choose(front, budget)
    first = next(iter(sites))
    trainable = {o.label: trains(candidates[first][o.label], sites[first], teacher.get_submodule(first)) for o in options}
    result = SearchResult(recipe, axis, budget, options, candidates, trainable, costs, scores, sparsity, front, chosen, target, teacher_top1,
                          phases.timing)
    if all(label == "keep" for label in chosen.sites.values()):
        raise SurgeryError(f"the budget {_budget_text(budget)} lets every site keep its attention, and so would the teacher: tighten it to search")
    result.write_mix(chosen, out, mix_recipe_name(recipe, name))
    report = result.to_json()
    write_text_atomic(out / "search.json", json.dumps(report, indent=2))
    plot_front(report, out / "front.png")
    return result


def _options_at(losses: Losses, options: list[SearchOption], costs: CostTable) -> dict[str, list[Option]]:
    """The solver's table: site path -> each option with its loss and costs there."""
    return {path: [Option(o.label, losses[path][o.label], by_option[o.label]) for o in options] for path, by_option in costs.sites.items()}


def _check_reachable(recipe: Recipe, options: list[SearchOption], costs: CostTable, budget: dict[str, float]) -> None:
    """Refuse a budget no mix meets before the predictor trains anything: which mixes fit depends on costs alone.

    The solver itself answers, on losses all zero, so the message is the one it would give, placed at the budget.
    """
    try:
        no_losses = {path: {o.label: 0.0 for o in options} for path in costs.sites}
        pareto_front(_options_at(no_losses, options, costs), next(iter(budget)), budget, costs.base)
    except SurgeryError as error:
        where = recipe.location_of(("search", "budget"))
        raise SurgeryError(f"{where}: search.budget: {error}" if where else f"search.budget: {error}") from error


def mix_recipe_name(recipe: Recipe, name: str | None) -> str:
    return name or f"{recipe.name}_mix"


def _budget_text(budget: dict[str, float]) -> str:
    return ", ".join(f"{metric} <= {limit:.4g}" for metric, limit in budget.items())


def _refuse_unsearchable(recipe: Recipe, options: list[SearchOption]) -> None:
    if recipe.data is None:
        raise SurgeryError(f"recipe {recipe.name!r} has no data section: the predictor distills each option on the recipe's data")
    if all(option.keeps for option in options):
        raise SurgeryError(f"recipe {recipe.name!r}: search.candidates offers only keep; add a substitute to choose")
    if recipe.model.from_run is not None:
        where = recipe.location_of(("model", "from_run"))
        raise SurgeryError(f"{where or 'model.from_run'}: a search starts from a teacher with attention, not from a finished run's models; "
                           "search the source run's recipe, then transfer the mix's run")
    halting = [index for index, stage in enumerate(recipe.stages) if stage.kind == "halt"]
    if halting:
        raise SurgeryError(f"recipe {recipe.name!r}: stage {halting[0]} halts tokens; the predictor compares every token, so search a recipe without halt")


@dataclass
class _Phase:
    cached: bool | None = None
    """Whether the phase's result came from the cache; None for a phase that caches nothing."""


class _Phases:
    """Wall time of each phase, and whether its result came from the cache."""

    def __init__(self) -> None:
        self.timing: dict[str, Any] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[_Phase]:
        started, phase = time.perf_counter(), _Phase()
        yield phase
        cached = {"cached": phase.cached} if phase.cached is not None else {}
        self.timing[name] = {"wall_s": round(time.perf_counter() - started, 3), **cached}


def _teacher(recipe: Recipe, cache: Path, device: str) -> tuple[nn.Module, str, float | None, bool]:
    """The teacher the recipe's teacher stages train (cached by everything they depend on), or its weights as built.

    Returns the model, its cache key, its top-1 after training (None when none ran), and whether it was cached.
    """
    stages = _teacher_stages(recipe)
    dumped = recipe.model_dump(mode="json", include={"model", "data", "seed"})
    key = cache_key("teacher", dumped, [stage.model_dump(mode="json") for stage in stages])
    seed_everything(recipe.seed)
    teacher = recipe_model(recipe, device, weights=not stages)  # halting is refused: teacher stages are fits
    if not stages:
        return teacher.eval().requires_grad_(False), key, None, False
    weights, record = cache / f"teacher-{key}.safetensors", cache / f"teacher-{key}.json"
    known = read_cached(record)
    if known is not None and weights.exists():
        load_weights_into(teacher, weights)
        return teacher.eval().requires_grad_(False), key, known["top1"], True
    ctx = DistContext(0, 1, 0, torch.device(device))
    with tempfile.TemporaryDirectory(prefix="surgery-search-teacher-") as scratch:
        run = RunDir(Path(scratch))
        run.checkpoints.mkdir()
        state = RunState(recipe, ctx, run, MetricsLog(None), teacher, input_size(teacher, recipe.model.input_size))
        for index, stage in enumerate(stages):
            run_stage(state, stage, index, None)
    cache.mkdir(parents=True, exist_ok=True)
    save_model_atomic(teacher, weights)
    top1 = state.results.get("teacher", {}).get("top1")
    write_cached(record, {"top1": top1})
    return teacher.eval().requires_grad_(False), key, top1, False


def _teacher_stages(recipe: Recipe) -> list:
    """The stages before the first that needs a student: they make the teacher the search starts from."""
    stages = []
    for stage in recipe.stages:
        if stage.kind not in TEACHER_STAGES:
            break
        stages.append(stage)
    return stages


def _sparsity(recipe: Recipe, teacher: nn.Module, size: tuple[int, ...]) -> dict[str, dict[str, float]] | None:
    """Each site's attention sparsity on validation data: features beside the predictions, and what sparsity selectors read."""
    if takes_tokens(teacher) or recipe.data is None:
        return None
    return {site.path: {metric: site.mean(metric) for metric in SPARSITY_METRICS} for site in measure_sites(teacher, recipe, size)}


def _sites(recipe: Recipe, search: Search, options: list[SearchOption], teacher: nn.Module, sparsity: dict | None) -> Plan:
    """The searched sites, as the search's selector picks them (sites no adapter fits are skipped, as a wildcard rewrite skips them)."""
    first = next(option for option in options if not option.keeps).to_json()  # at its defaults: its params are checked per candidate
    rewrite = {"select": search.select.model_dump(mode="json", exclude_defaults=True), "substitute": first["substitute"]}
    selecting = recipe_from_data({**recipe.model_dump(mode="json", by_alias=True, exclude={"extends", "search"}), "rewrites": [rewrite]})
    try:
        found = plan(selecting, teacher, sparsity)
    except SurgeryError as error:
        location = recipe.location_of(("search", "select"))
        raise SurgeryError(f"{location}: search.select: {error}" if location else f"search.select: {error}") from error
    blocks = [path.rpartition(".")[0] for path in found.selected_paths]
    shared = {block for block in blocks if blocks.count(block) > 1}
    if shared:
        raise SurgeryError(f"block {sorted(shared)[0]} holds more than one searched site; select one site per block (search.select)")
    return found


class _Students:
    """Each substitute option's uniform student (every searched site takes it), built once when first needed."""

    def __init__(self, recipe: Recipe, options: list[SearchOption], candidates: dict[str, dict[str, Candidate]], teacher: nn.Module) -> None:
        self.recipe, self.options, self.candidates, self.teacher = recipe, options, candidates, teacher
        self._built: dict[str, nn.Module] = {}

    def all(self) -> dict[str, nn.Module]:
        """Option label -> uniform student, and `keep` -> the teacher."""
        return {"keep": self.teacher, **{option.label: self.build(option.label) for option in self.options if not option.keeps}}

    def build(self, label: str) -> nn.Module:
        """The uniform student of option `label`."""
        if label not in self._built:
            uniform = mix_recipe(self.recipe, {path: by_option[label] for path, by_option in self.candidates.items()})
            self._built[label] = build_student(self.teacher, plan(uniform, self.teacher)).eval()
        return self._built[label]


def _costs(recipe: Recipe, cache: Path, options: list[SearchOption], sites_plan: Plan, students: _Students, size: tuple[int, ...],
           metrics: list[str]) -> tuple[CostTable, bool]:
    machine_part = machine() if "cpu_latency" in metrics else None
    key = cache_key("costs", recipe.model.model_dump(mode="json"), list(size), recipe.hardware.model_dump(mode="json"),
                    [o.to_json() for o in options], sites_plan.selected_paths, metrics, machine_part)
    path = cache / f"costs-{key}.json"
    known = read_cached(path)
    if known is not None:
        return CostTable.from_json(known), True
    table = cost_table(recipe, students.all(), sites_plan.selected_paths, sites_plan.site_paths, size, metrics)
    write_cached(path, table.to_json())
    return table, False


def _scores(recipe: Recipe, search: Search, cache: Path, teacher_key: str, options: list[SearchOption], sites_plan: Plan,
            students: _Students, size: tuple[int, ...]) -> tuple[dict[str, Losses], bool]:
    """Every predictor score of every option at every site; each option's measurements and the teacher's reference
    are cached apart, so a search with one more candidate trains only it. Also whether nothing had to be trained."""
    training = search.predictor.model_dump(mode="json", exclude={"score"})  # one run gives every score
    common = (teacher_key, recipe.model_dump(mode="json", include={"data", "seed"}), training, sites_plan.selected_paths)
    reference_path = cache / f"reference-{cache_key('reference', *common)}.json"
    paths = {o.label: cache / f"option-{cache_key('option', *common, o.to_json())}.json" for o in options if not o.keeps}
    reference = read_cached(reference_path)
    known = {label: read_cached(path) for label, path in paths.items()}
    missing = [label for label, value in known.items() if value is None]
    cached = reference is not None and not missing
    if not cached:
        spec, teacher = search.predictor, students.teacher
        loaders = build_loaders(recipe.data, size, spec.batch_size, seed=recipe.seed, model=teacher)
        blocks = dict(zip(sites_plan.selected_paths, sites_plan.block_paths))
        predictor = Predictor(teacher, blocks, loaders.train, loaders.val, spec, recipe.seed, TaskLoss(uses_teacher=takes_tokens(teacher)))
        if reference is None:
            reference = predictor.reference()
            write_cached(reference_path, reference)
        for index, label in enumerate(missing, 1):
            console.print(f"predictor {index}/{len(missing)}: {label}, {spec.steps} distillation and {spec.finetune_steps} finetune steps", highlight=False)
            known[label] = predictor.score(students.build(label)).to_json()
            write_cached(paths[label], known[label])
    return site_scores({label: OptionScores.from_json(value) for label, value in known.items()}, reference), cached
