"""What dynamic int8 costs a trained run in accuracy, measured where it is deployed: ONNX Runtime.

The bench times both models of a comparison at the same precision; latency
alone would hide that quantizing the recurrences may cost the student more
top-1 than it costs the teacher. So for a finished run, the teacher and the
student are exported, quantized the way the bench does it, and evaluated on
the recipe's validation split in fp32 and int8.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort
import torch
from torch import nn

from surgery.data import build_val_loader
from surgery.deploy.bench import STUDENT, quantize_int8
from surgery.deploy.export import INPUT, OUTPUT, Models, export_onnx
from surgery.errors import SurgeryError
from surgery.recipe import Recipe
from surgery.train.distributed import init_distributed
from surgery.train.evaluation import top1


@dataclass(frozen=True)
class PrecisionAccuracy:
    """Top-1 (percent) of one model in ONNX Runtime at fp32 and at dynamic int8."""

    model: str
    fp32_top1: float
    int8_top1: float

    @property
    def change(self) -> float:
        return self.int8_top1 - self.fp32_top1

    def to_json(self) -> dict[str, object]:
        return {"model": self.model, "fp32_top1": self.fp32_top1, "int8_top1": self.int8_top1, "change": self.change}


class OnnxClassifier(nn.Module):
    """An ONNX Runtime session behind the `nn.Module` call, so the training code's `top1` evaluates it."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run([OUTPUT], {INPUT: images.numpy()})[0])


def int8_accuracy(recipe: Recipe, models: Models, workdir: Path, batch_size: int = 256) -> list[PrecisionAccuracy]:
    """fp32 and int8 top-1 of a run's teacher and student (`models`) on its `recipe`'s validation split."""
    if recipe.data is None:
        raise SurgeryError(f"recipe {recipe.name!r} has no data section to measure int8 accuracy on")
    val = build_val_loader(recipe.data, models.input_size, batch_size, seed=recipe.seed, model=models.teacher)
    ctx = init_distributed("cpu")
    spec = models.spec.model_copy(update={"dynamic_batch": True})
    results = []
    for name, model in ((models.name, models.teacher), (STUDENT, models.student)):
        path = export_onnx(model, models.input_size, workdir / f"{name}-accuracy.onnx", spec, force=True).path
        fp32 = top1(OnnxClassifier(path), val, ctx)
        int8 = top1(OnnxClassifier(quantize_int8(path)), val, ctx)
        results.append(PrecisionAccuracy(name, fp32, int8))
    return results
