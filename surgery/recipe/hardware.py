"""The recipe's `hardware` section resolved to hwmodel's `Device` and `Gpu`, with errors at their place in the recipe.

hwmodel validates a device with pydantic; its errors name fields of the device
(`adc.bits`), which a recipe writes under `hardware.overrides`. Resolving here,
during `check_recipe`, refuses a bad device before any model is built or trained.
"""

from __future__ import annotations

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from hwmodel import Device, Gpu, get_device, get_gpu
from surgery.errors import Problem, RecipeError
from surgery.recipe.schema import Recipe


def resolve_hardware(recipe: Recipe) -> tuple[Device, Gpu]:
    """The validated crossbar device and GPU baseline that `recipe.hardware` names.

    Raises:
        RecipeError: an unknown preset or GPU, or an override the device refuses, each naming its field.

    Example:
        >>> from surgery.recipe import recipe_from_data
        >>> data = {"name": "r", "model": {"name": "deit_tiny_patch16_224"}, "rewrites": [{}]}
        >>> device, gpu = resolve_hardware(recipe_from_data(data, ["hardware.overrides.adc.bits=6"]))
        >>> device.adc.bits, gpu.name
        (6, 'a100')
    """
    spec = recipe.hardware
    try:
        device = get_device(spec.preset, spec.overrides)
    except KeyError as error:
        raise RecipeError([_problem(recipe, ("preset",), error.args[0])]) from None
    except ValidationError as error:
        raise RecipeError([_override_problem(recipe, details) for details in error.errors()]) from None
    try:
        return device, get_gpu(spec.gpu)
    except KeyError as error:
        raise RecipeError([_problem(recipe, ("gpu",), error.args[0])]) from None


def hardware_problems(recipe: Recipe) -> list[Problem]:
    """What `resolve_hardware` refuses, as problems for `check_recipe` (empty when the section resolves)."""
    try:
        resolve_hardware(recipe)
    except RecipeError as error:
        return error.problems
    return []


def _problem(recipe: Recipe, keys: tuple[str, ...], message: str) -> Problem:
    field = ".".join(("hardware", *keys))
    return Problem(recipe.location_of(("hardware", *keys)), f"{field}: {message}")


def _override_problem(recipe: Recipe, details: ErrorDetails) -> Problem:
    """A device field error, reported under hardware.overrides (the model-wide checks at the section itself)."""
    keys = ("overrides", *map(str, details["loc"]))
    return _problem(recipe, keys, _reworded(details))


def _reworded(details: ErrorDetails) -> str:
    if details["type"] == "extra_forbidden":
        return "not a field of the device"
    message = details["msg"].removeprefix("Value error, ")
    if message.startswith("Input should be "):
        return f"expected {message.removeprefix('Input should be ')}, got {details['input']!r}"
    return message
