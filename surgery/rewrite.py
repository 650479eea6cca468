"""The rewrite pass: swap each planned site's `call_module` node for its substitute.

The student is a GraphModule over a deep copy of the teacher, so the teacher is
never mutated. Every node's output shape is then checked against the teacher's.
"""

from __future__ import annotations

import copy
import inspect
import zlib

import torch
from torch import fx, nn

from far_modules import build_substitute
from surgery.errors import SurgeryError
from surgery.models import example_input
from surgery.plan import Plan, Step, site_spec
from surgery.tracing import propagate_shapes, shape_of, trace


def apply(model: nn.Module, plan: Plan) -> fx.GraphModule:
    """The student: `model` with every planned site replaced; `model` itself is left untouched.

    Substitutes are seeded from the recipe seed and the site path, so the same
    recipe gives the same weights whatever else was selected.
    """
    paths = plan.selected_paths
    student = trace(copy.deepcopy(model), leaf_paths=paths)
    calls = {node.target: node for node in student.graph.nodes if node.op == "call_module"}
    for step in plan.steps:
        _replace(student, calls[step.site.path], step, model.get_submodule(step.site.path), plan.seed)
    student.graph.lint()
    student.recompile()
    _check_shapes(trace(model, leaf_paths=paths), student, example_input(model, plan.input_size))
    return student


def site_seed(seed: int, path: str) -> int:
    """A per-site seed that depends only on the recipe seed and the site's path."""
    return zlib.crc32(f"{seed}:{path}".encode())


def _replace(student: fx.GraphModule, node: fx.Node, step: Step, source: nn.Module, seed: int) -> None:
    _check_plain_call(node, source, step.site.path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(site_seed(seed, step.site.path))
        substitute = build_substitute(step.substitute, site_spec(step.site), source, **step.params)
    reference = next(source.parameters(), None)
    if reference is not None:
        substitute = substitute.to(device=reference.device, dtype=reference.dtype)
    student.add_submodule(step.site.path, substitute)
    node.args, node.kwargs = node.args[:1], {}


def _check_plain_call(node: fx.Node, source: nn.Module, path: str) -> None:
    """Refuse a site called with anything but its input and its own defaults (masks, extra inputs)."""
    bound = inspect.signature(source.forward).bind(*node.args, **node.kwargs)
    names = list(bound.signature.parameters)
    for name, value in bound.arguments.items():
        default = bound.signature.parameters[name].default
        if name != names[0] and (isinstance(value, fx.Node) or value != default):
            raise SurgeryError(f"{path}: called with {name}={value}; substitutes take plain (B, N, C) self-attention calls only")


def _check_shapes(teacher: fx.GraphModule, student: fx.GraphModule, example: torch.Tensor) -> None:
    propagate_shapes(teacher, example)
    propagate_shapes(student, example)
    after = {node.name: shape_of(node) for node in student.graph.nodes}
    for node in teacher.graph.nodes:
        if shape_of(node) != after.get(node.name):
            where = node.target if node.op == "call_module" else node.name
            raise SurgeryError(f"{where}: output shape changed from {shape_of(node)} to {after.get(node.name)} by the rewrite")
