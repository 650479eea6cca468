"""The classifier head against the data: a run's model predicts exactly the classes its data labels.

timm builds a model with its pretrained config's head (1000 ImageNet classes)
unless `num_classes` says otherwise. When the data has another number of
classes and the recipe left `model.kwargs.num_classes` out, the run asks timm
for a head of the data's size (a fresh classifier; pretrained weights load for
everything else, as `reset_classifier` would leave them) and says so. A count
the recipe states itself, or a model without a classifier, is refused before
anything is written; `surgery validate` does the same where the count is
known without the data (stated, the digits, or a folder already on disk).
"""

from __future__ import annotations

from surgery.data import class_count
from surgery.errors import SurgeryError
from surgery.models import recipe_model
from surgery.recipe import FolderData, Recipe


def fit_head(recipe: Recipe) -> tuple[Recipe, str | None]:
    """`recipe` with a model predicting its data's classes, and a note when the head was changed for it.

    Raises:
        SurgeryError: `model.kwargs.num_classes` disagrees with the data, or the model has no classifier to resize.
    """
    if recipe.data is None or recipe.model.source == "transformers":  # an encoder's labels feed a probe, not a head
        return recipe, None
    return _fit(recipe, class_count(recipe.data))


def check_head(recipe: Recipe) -> str | None:
    """`fit_head`'s note where the class count is known without reading images; None where it is not.

    Raises:
        SurgeryError: as `fit_head`.
    """
    data = recipe.data
    if recipe.model.source == "transformers":
        return None
    if isinstance(data, FolderData) and data.num_classes is not None:
        return _fit(recipe, data.num_classes)[1]
    if data is None or (isinstance(data, FolderData) and not (data.root / data.train_split).is_dir()):
        return None
    return fit_head(recipe)[1]


def _fit(recipe: Recipe, classes: int) -> tuple[Recipe, str | None]:
    spec = recipe.model
    predicted = getattr(recipe_model(recipe, "meta"), "num_classes", None)
    if predicted == classes:
        return recipe, None
    if "num_classes" in spec.kwargs:
        where = recipe.location_of(("model", "kwargs", "num_classes")) or "model.kwargs.num_classes"
        raise SurgeryError(f"{where}: the model predicts {predicted} classes but the data has {classes}")
    if predicted is None:
        where = recipe.location_of(("data",)) or "data"
        raise SurgeryError(f"{where}: the data has {classes} classes and {spec.name} has no classifier head to predict them")
    fitted = recipe.model_copy(update={"model": spec.model_copy(update={"kwargs": {**spec.kwargs, "num_classes": classes}})})
    if spec.from_run is not None:  # the run's own class count is read with its weights (surgery.runs.transfer)
        return fitted, f"the {spec.use} of {spec.from_run} gets a new {classes}-class classifier for the data"
    has = f"predicts {predicted} classes" if predicted else "has no classifier (features only)"
    note = f"{spec.name} {has} and the data has {classes}: its head starts as a new {classes}-class classifier"
    return fitted, note

