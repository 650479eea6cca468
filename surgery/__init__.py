"""surgery: declarative attention replacement for timm transformers.

The public face, in the order of the pipeline: load a recipe, build its
model, find its attention sites, `plan` the surgery (nothing is mutated),
`build_student` from the plan, `count` and `price_models` what changed;
`apply_recipe` runs a whole recipe (`surgery apply`), `load_run` rebuilds a
finished run, `export_onnx` writes a model for deployment, `run_search` searches
a recipe's mix of substitutes (`surgery search`). The subpackages (`graph`,
`detect`, `rewrite`, `measure`, `train`, `runs`, `search`, `deploy`, `analyze`)
hold the rest.

Example:
    >>> import surgery
    >>> recipe = surgery.load_recipe("recipes/deit_far.yaml")
    >>> teacher = surgery.build_model(recipe.model.name, device="meta")
    >>> student = surgery.build_student(teacher, surgery.plan(recipe, teacher))
"""

from surgery.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "CostReport": "surgery.measure.costing",
        "Counts": "surgery.measure.counting",
        "ExportResult": "surgery.deploy.export",
        "Location": "surgery.errors",
        "Plan": "surgery.rewrite.plan",
        "Problem": "surgery.errors",
        "Recipe": "surgery.recipe",
        "RecipeError": "surgery.errors",
        "RunDir": "surgery.runs",
        "Site": "surgery.detect.sites",
        "Step": "surgery.rewrite.plan",
        "SurgeryError": "surgery.errors",
        "apply_recipe": "surgery.runs",
        "build_model": "surgery.models",
        "build_student": "surgery.rewrite.student",
        "check_recipe": "surgery.recipe",
        "count": "surgery.measure.counting",
        "export_onnx": "surgery.deploy.export",
        "find_sites": "surgery.detect.sites",
        "input_size": "surgery.models",
        "load_recipe": "surgery.recipe",
        "load_run": "surgery.runs",
        "plan": "surgery.rewrite.plan",
        "price_models": "surgery.measure.costing",
        "run_search": "surgery.search.driver",
        "SearchResult": "surgery.search.driver",
    },
)
__all__ = ["CostReport", "Counts", "ExportResult", "Location", "Plan", "Problem", "Recipe", "RecipeError", "RunDir", "Site", "Step", "SurgeryError", "apply_recipe", "build_model", "build_student", "check_recipe", "count", "export_onnx", "find_sites", "input_size", "load_recipe", "load_run", "plan", "price_models", "run_search", "SearchResult"]
