"""One call of a module, as shapes and as the arguments it was given: what tracing and probing both report."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class CallShapes:
    """One call of a module, as shapes: from an fx trace or from running it (see `surgery.graph.probe`)."""

    input: tuple[int, ...] | None
    """The first argument's shape; None when it is not a tensor."""
    output: tuple[int, ...] | None
    """The output's shape; None when it is not one tensor (nor a tuple of one tensor and Nones)."""
    operands: tuple[tuple[int, ...], ...]
    """Shapes of the activation operands of the module's activation x activation products."""
    adds_input: bool = False
    """The module adds its own input back (a residual): it is a block computing attention inline."""
    output_nones: int = 0
    """The module returned a tuple: the `output` tensor, then this many Nones (Hugging Face attention's absent weights)."""


@dataclass(frozen=True)
class AttentionCall:
    """What tracing or probing saw of one module that multiplies two activations."""

    shapes: CallShapes
    products: tuple[str, ...]
    """The contractions that multiplied two activations, by name."""
    extra_inputs: tuple[str, ...]
    """Arguments besides the first that were passed with non-default values."""
    query: tuple[int, ...] | None
    """Shape of the first activation operand of the first product: the head layout is read off it."""


def passed_arguments(module: nn.Module, args: tuple, kwargs: dict, differs: Callable[[object, object], bool]) -> tuple[str, ...]:
    """Names of the arguments after the first whose value `differs` from the forward's default.

    Keywords gathered by a `**kwargs` parameter count by their own names, with None as their default.
    """
    bound = inspect.signature(module.forward).bind(*args, **kwargs)
    parameters = bound.signature.parameters
    passed = []
    for name, value in list(bound.arguments.items())[1:]:
        if parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            passed += [key for key, item in value.items() if differs(item, None)]
        elif differs(value, parameters[name].default):
            passed.append(name)
    return tuple(passed)
