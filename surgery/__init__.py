"""surgery: declarative attention replacement for timm transformers.

The public face: load a recipe, build its model, `plan` the surgery (no
mutation), `apply` it to get the student, `count` what changed.

Example:
    >>> import surgery
    >>> recipe = surgery.load_recipe("recipes/deit_far.yaml")
    >>> teacher = surgery.build_model(recipe.model.name, device="meta")
    >>> student = surgery.apply(teacher, surgery.plan(recipe, teacher))
"""

from surgery.counting import Counts, count
from surgery.errors import Location, Problem, RecipeError, SurgeryError
from surgery.models import build_model, check_model_name, input_size
from surgery.plan import Plan, Step, plan
from surgery.recipe import Recipe, check_recipe, load_recipe
from surgery.rewrite import apply
from surgery.select import select
from surgery.sites import Site, activation_products, find_sites
from surgery.tracing import trace

__all__ = [
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
    "build_model",
    "check_model_name",
    "check_recipe",
    "count",
    "find_sites",
    "input_size",
    "load_recipe",
    "plan",
    "select",
    "trace",
]
