"""The classifier head against the data: a run's model predicts exactly the classes its data labels.

timm builds a model with its pretrained config's head (1000 ImageNet classes)
unless `num_classes` says otherwise. When the data has another number of
classes and the recipe left `model.kwargs.num_classes` out, the run asks timm
for a head of the data's size (a fresh classifier; pretrained weights load for
everything else, as `reset_classifier` would leave them) and says so. A count
the recipe states itself, or a model without a classifier, is refused before
anything is written.
"""

from __future__ import annotations

from surgery.data import class_count
from surgery.errors import SurgeryError
from surgery.models import build_model
from surgery.recipe import Recipe


def fit_head(recipe: Recipe) -> tuple[Recipe, str | None]:
    """`recipe` with a model predicting its data's classes, and a note when the head was changed for it.

    Raises:
        SurgeryError: `model.kwargs.num_classes` disagrees with the data, or the model has no classifier to resize.
    """
    if recipe.data is None:
        return recipe, None
    classes = class_count(recipe.data)
    spec = recipe.model
    predicted = getattr(build_model(spec.name, spec.kwargs, device="meta"), "num_classes", None)
    if predicted == classes:
        return recipe, None
    if "num_classes" in spec.kwargs:
        where = recipe.location_of(("model", "kwargs", "num_classes")) or "model.kwargs.num_classes"
        raise SurgeryError(f"{where}: the model predicts {predicted} classes but the data has {classes}")
    if not predicted:
        where = recipe.location_of(("data",)) or "data"
        raise SurgeryError(f"{where}: the data has {classes} classes and {spec.name} has no classifier head to predict them")
    fitted = recipe.model_copy(update={"model": spec.model_copy(update={"kwargs": {**spec.kwargs, "num_classes": classes}})})
    note = f"{spec.name} predicts {predicted} classes and the data has {classes}: its head starts as a new {classes}-class classifier"
    return fitted, note
