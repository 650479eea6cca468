"""The rewrite: swap each planned site for its substitute, then prove shapes are unchanged.

The student is a deep copy of the teacher with the site modules swapped for
adapted substitutes, so it stays an instance of the timm class (its
`forward_features`, `pretrained_cfg` and state-dict names survive) and the
teacher is never mutated. torch.fx checks the result: both models are traced
with the sites as leaves and every node's output shape must match. A model
torch.fx cannot trace (a Hugging Face text model) is run instead, teacher and
student on the same input, and every tensor of their outputs must match in shape.
"""

from __future__ import annotations

import contextlib
import copy
import zlib

import torch
from torch import nn
from torch.utils._pytree import keystr, tree_flatten_with_path

from far_modules import build_substitute
from hwmodel.dataflow import RecurrentShapes
from surgery.errors import SurgeryError
from surgery.graph.shaped import ShapedGraphs
from surgery.graph.tracing import shape_of
from surgery.models import Device, example_input, one_line, recipe_model
from surgery.recipe import Recipe, check_recipe
from surgery.rewrite.adapters import SiteAdapter
from surgery.rewrite.plan import Plan, Step, plan, site_spec


def build_student(model: nn.Module, plan: Plan, graphs: ShapedGraphs | None = None) -> nn.Module:
    """The student: a copy of `model` with every planned site replaced; `model` is left untouched.

    Substitutes are seeded from the recipe seed and the site path, so the same
    recipe gives the same weights whatever else was selected. `graphs` keeps the
    traces the shape check makes, for a caller that counts or prices the two
    models next.
    """
    student = copy.deepcopy(model)
    for step in plan.steps:
        student.set_submodule(step.site.path, build_site_substitute(step, model.get_submodule(step.site.path), plan.seed))
    check_shapes(model, student, plan, graphs)
    return student


def build_site_substitute(step: Step, source: nn.Module, seed: int) -> SiteAdapter:
    """The adapted substitute for one step, initialised from `source` when its params ask for it.

    Weights are drawn on the CPU whatever the model's device, so a seed gives the same weights everywhere; a model on
    the meta device has no weights, and its substitutes are built there (drawing a giant's on the CPU takes seconds).
    """
    reference = next(source.parameters(), None)
    on_meta = reference is not None and reference.is_meta
    with torch.random.fork_rng(devices=[]), torch.device("meta") if on_meta else contextlib.nullcontext():
        torch.manual_seed(site_seed(seed, step.site.path))
        substitute = build_substitute(step.substitute, site_spec(step.site), source, **step.params)
    if reference is not None:
        substitute = substitute.to(device=reference.device, dtype=reference.dtype)
    assert step.site.contract is not None, "plan() admits only sites with a contract"
    return SiteAdapter(substitute, source, step.site.contract, step.site.path, step.token_order).train(source.training)


def site_seed(seed: int, path: str) -> int:
    """A per-site seed that depends only on the recipe seed and the site's path."""
    return zlib.crc32(f"{seed}:{path}".encode())


def check_shapes(teacher: nn.Module, student: nn.Module, plan: Plan, graphs: ShapedGraphs | None = None) -> None:
    """Trace both with the sites as leaves; every node must produce the teacher's shape.

    Where torch.fx cannot trace the model, both are run and their outputs compared instead (`check_output_shapes`).
    """
    graphs, example = graphs or ShapedGraphs(), example_input(teacher, plan.input_size)
    before, after = (graphs.of(model, plan.site_paths, example) for model in (teacher, student))
    if before is None or after is None:
        check_output_shapes(teacher, student, example)
        return
    shapes = {node.name: shape_of(node) for node in after.graph.nodes}
    for node in before.graph.nodes:
        if node.op != "get_attr" and shape_of(node) != shapes.get(node.name):  # constants are numbered by trace order
            where = node.target if node.op == "call_module" else node.name
            raise SurgeryError(f"{where}: output shape changed from {shape_of(node)} to {shapes.get(node.name)} by the rewrite")


def check_output_shapes(teacher: nn.Module, student: nn.Module, example: torch.Tensor) -> None:
    """Run both on `example`: the student's outputs must be the teacher's, tensor by tensor, in shape.

    Only the outputs are compared (a run has no graph of intermediate nodes); recurrent kernels on the
    meta device are answered from their weights' shapes.
    """
    outputs = []
    for name, model in (("teacher", teacher), ("student", student)):
        try:
            with RecurrentShapes(meta_only=True), torch.no_grad():
                outputs.append(tree_flatten_with_path(model(example))[0])
        except Exception as error:  # the model's own error, of any type
            raise SurgeryError(f"the {name} does not run on its example input: {one_line(error)}") from error
    before, after = ({keystr(key): _shape(value) for key, value in leaves} for leaves in outputs)
    for key in sorted(before.keys() | after.keys()):
        if before.get(key) != after.get(key):
            raise SurgeryError(f"output{key}: shape changed from {before.get(key)} to {after.get(key)} by the rewrite")


def _shape(value: object) -> tuple[int, ...] | None:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


def substitutes(student: nn.Module) -> dict[str, nn.Module]:
    """Site path -> substitute module, for every adapted site of a student."""
    return {path: module.current_substitute() for path, module in student.named_modules() if isinstance(module, SiteAdapter)}


def substitute_paths(student: nn.Module) -> list[str]:
    """Module paths of the substitutes themselves (inside adapters, or inside rewritten blocks): what distillation trains."""
    wanted = {id(module) for module in substitutes(student).values()}
    return [path for path, module in student.named_modules() if id(module) in wanted]


def plan_and_build(recipe: Recipe, device: Device = "cpu", graphs: ShapedGraphs | None = None) -> tuple[Plan, nn.Module, nn.Module]:
    """Check the recipe, build its model with random weights, plan, and build the student: (plan, teacher, student).

    No weights are downloaded: shapes, counts and costs do not depend on them. `graphs` keeps the shape check's
    traces for counting and pricing.
    """
    check_recipe(recipe)
    teacher = recipe_model(recipe, device)
    surgery_plan = plan(recipe, teacher, graphs=graphs)
    return surgery_plan, teacher, build_student(teacher, surgery_plan, graphs)
