"""Replay: a student rebuilt from its recipe, its teacher and its surgery record, with weights loaded strictly.

One sequence for every path that brings a student back (`load_run` in a fresh
process, `--resume` from a checkpoint): plan the recipe on the teacher (sites
chosen by the recorded sparsity, never measured again), build the student,
restructure pruned substitutes as recorded, then load the weights, which must
fit exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch import nn

from surgery.errors import SurgeryError
from surgery.models import input_size, one_line, recipe_model
from surgery.recipe import Recipe, load_recipe
from surgery.rewrite.plan import Plan, plan
from surgery.rewrite.student import build_student
from surgery.runs.halting import restore_halting
from surgery.runs.record import SurgeryRecord
from surgery.runs.rundir import RunDir
from surgery.train.checkpoint import load_weights_into, read_json


def replay(recipe: Recipe, teacher: nn.Module, record: SurgeryRecord, weights: Path | dict[str, torch.Tensor]) -> tuple[Plan, nn.Module]:
    """(plan, student) of `record`; `weights` is a safetensors file or a state dict, loaded strictly.

    Raises:
        SurgeryError: the weights do not fit the rebuilt student (names the file when there is one).
    """
    surgery_plan = plan(recipe, teacher, record.sparsity)
    student = build_student(teacher, surgery_plan)
    record.restructure(student)
    if isinstance(weights, Path):
        load_weights_into(student, weights)
        return surgery_plan, student
    try:
        student.load_state_dict(weights, strict=True)
    except RuntimeError as error:
        raise SurgeryError(f"the checkpoint's student weights do not fit the student rebuilt from the run's record: {one_line(error)}") from error
    return surgery_plan, student


def load_run(directory: str | Path, which: Literal["student", "teacher"] = "student") -> nn.Module:
    """Rebuild a finished run's student (or teacher) in a fresh process: timm model, replayed surgery, strict weights.

    Example:
        >>> student = load_run("runs/quickstart")  # doctest: +SKIP
    """
    run = RunDir(Path(directory))
    if not run.student_weights.exists():
        raise SurgeryError(f"{directory}: no finished run here (missing {run.student_weights.name})")
    recipe, teacher = _teacher(run)
    if which == "teacher":
        return teacher.requires_grad_(False)
    return _student(recipe, teacher, run.record, run.student_weights)


def load_evaluated(directory: str | Path, row: Literal["student", "pruned"]) -> nn.Module:
    """The student a report row measured (`evaluated/<row>.*`), rebuilt as `load_run` rebuilds the final one.

    Raises:
        SurgeryError: the run kept no student for `row` (it has no such row, or was made before rows were kept).
    """
    run = RunDir(Path(directory))
    weights = run.evaluated_weights(row)
    if not weights.exists():
        raise SurgeryError(f"{directory}: no {row} student kept (missing {weights.relative_to(run.root)})")
    recipe, teacher = _teacher(run)
    return _student(recipe, teacher, run.evaluated_record(row), weights)


def _teacher(run: RunDir) -> tuple[Recipe, nn.Module]:
    recipe = load_recipe(run.recipe)
    teacher = recipe_model(recipe)
    load_weights_into(teacher, run.teacher_weights)
    restore_halting(recipe, teacher, input_size(teacher, recipe.model.input_size))
    return recipe, teacher


def _student(recipe: Recipe, teacher: nn.Module, record: Path, weights: Path) -> nn.Module:
    surgery_record = SurgeryRecord.from_json(read_json(record, "a surgery record"), record)
    return replay(recipe, teacher, surgery_record, weights)[1].eval()
