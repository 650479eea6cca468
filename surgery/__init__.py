"""surgery: declarative attention replacement for timm transformers.

The public face, in the order of the pipeline: load a recipe, build its
model, find its attention sites, `plan` the surgery (nothing is mutated),
`build_student` from the plan, `count` and `price_models` what changed;
`apply_recipe` runs a whole recipe (`surgery apply`), `load_run` rebuilds a
finished run, `export_onnx` writes a model for deployment. The subpackages
(`graph`, `detect`, `rewrite`, `measure`, `train`, `runs`, `deploy`,
`analyze`) hold the rest.

Example:
    >>> import surgery
    >>> recipe = surgery.load_recipe("recipes/deit_far.yaml")
    >>> teacher = surgery.build_model(recipe.model.name, device="meta")
    >>> student = surgery.build_student(teacher, surgery.plan(recipe, teacher))
"""

from surgery.deploy.export import ExportResult, export_onnx
from surgery.detect.sites import Site, find_sites
from surgery.errors import Location, Problem, RecipeError, SurgeryError
from surgery.measure.costing import CostReport, price_models
from surgery.measure.counting import Counts, count
from surgery.models import build_model, input_size
from surgery.recipe import Recipe, check_recipe, load_recipe
from surgery.rewrite.plan import Plan, Step, plan
from surgery.rewrite.student import build_student
from surgery.runs import RunDir, apply_recipe, load_run

__all__ = [
    "CostReport",
    "Counts",
    "ExportResult",
    "Location",
    "Plan",
    "Problem",
    "Recipe",
    "RecipeError",
    "RunDir",
    "Site",
    "Step",
    "SurgeryError",
    "apply_recipe",
    "build_model",
    "build_student",
    "check_recipe",
    "count",
    "export_onnx",
    "find_sites",
    "input_size",
    "load_recipe",
    "load_run",
    "plan",
    "price_models",
]
