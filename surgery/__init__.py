"""surgery: declarative attention replacement for timm transformers.

The public face: load a recipe, build its model, `plan` the surgery (no
mutation), `apply` it to get the student, `count` what changed.

Example:
    >>> import surgery
    >>> recipe = surgery.load_recipe("recipes/deit_far.yaml")
    >>> teacher = surgery.build_model(recipe.model.name, device="meta")
    >>> student = surgery.apply(teacher, surgery.plan(recipe, teacher))
"""

from surgery.costing import CostReport, price_models
from surgery.counting import Counts, count
from surgery.errors import Location, Problem, RecipeError, SurgeryError
from surgery.models import build_model, check_model_name, input_size
from surgery.plan import Plan, Step, plan
from surgery.recipe import Recipe, check_recipe, load_recipe
from surgery.rewrite import apply
from surgery.runs import apply_recipe, load_run
from surgery.select import select
from surgery.sites import Site, activation_products, find_sites
from surgery.tracing import trace

load = load_run
"""`surgery.load(DIR)`: a finished run's student, rebuilt from the timm model, the surgery record and safetensors."""

__all__ = [
    "CostReport",
    "Counts",
    "Location",
    "Plan",
    "Problem",
    "Recipe",
    "RecipeError",
    "Site",
    "Step",
    "SurgeryError",
    "activation_products",
    "apply",
    "apply_recipe",
    "build_model",
    "check_model_name",
    "check_recipe",
    "count",
    "find_sites",
    "input_size",
    "load",
    "load_run",
    "load_recipe",
    "plan",
    "price_models",
    "select",
    "trace",
]
