"""How much of timm surgery can rewrite: one small model per attention family, end to end.

For each family's smallest model (random weights, a small input): the sites
detection finds against the attention modules its source defines, then the
whole chain a recipe would run: plan and rewrite every site with `bilstm`, a
forward, one block-wise distillation step (loss finite, every substitute
reached by the loss's gradient, which zero-initialised post-norms such as
Swin V2's make exactly zero), and an ONNX export with its parity check. A family is
covered when rewrite, forward and distillation work; the export is reported
beside it. Failures keep the step and the error, so the table says why.
"""

from __future__ import annotations

import contextlib
import io
import re
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from surgery.deploy.export import export_onnx
from surgery.detect.sites import find_sites
from surgery.models import build_model, example_input, input_size
from surgery.recipe import DistillStage, recipe_from_data
from surgery.rewrite.plan import block_paths
from surgery.rewrite.student import plan_and_build, substitutes
from surgery.train.objectives import distill_objective


@dataclass(frozen=True)
class Family:
    """A timm attention family and the small model that stands for it."""

    family: str
    model: str
    kwargs: dict[str, object] = field(default_factory=dict, hash=False)
    input_size: tuple[int, int, int] | None = None


@dataclass
class FamilyResult:
    """What worked for one family; `reason` names the first step that failed and its error."""

    family: str
    model: str
    sites: int = 0
    attention_modules: int = 0
    layouts: str = ""
    rewrite: bool = False
    forward: bool = False
    distill: bool = False
    onnx: bool = False
    reason: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.rewrite and self.forward and self.distill

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "ok": self.ok}


_VIT = {"img_size": 32, "depth": 2}
_SMALL = (3, 64, 64)
_SWIN = {"img_size": 64, "window_size": 4, "embed_dim": 32, "depths": [2, 1, 1, 1], "num_heads": [1, 2, 2, 4]}
FAMILIES: tuple[Family, ...] = (
    Family("vit", "vit_tiny_patch16_224", _VIT),
    Family("deit", "deit_tiny_patch16_224", _VIT),
    Family("deit3", "deit3_small_patch16_224", _VIT),
    Family("flexivit", "flexivit_small", {"img_size": 30, "depth": 2}),
    Family("vit_hybrid", "vit_tiny_r_s16_p8_224", {"img_size": 64, "depth": 2}),
    Family("naflexvit", "naflexvit_base_patch16_gap", {"img_size": 32, "depth": 2}, (3, 32, 32)),
    Family("vit_relpos", "vit_relpos_small_patch16_224", _VIT),
    Family("vit_parallel", "vit_pwee_patch16_reg1_gap_256", _VIT),
    Family("cait", "cait_xxs24_224", _VIT),
    Family("beit", "beit_base_patch16_224", _VIT),
    Family("eva", "eva02_tiny_patch14_224", {"img_size": 28, "depth": 2}),
    Family("swin", "swin_tiny_patch4_window7_224", _SWIN),
    Family("swinv2", "swinv2_tiny_window8_256", _SWIN),
    Family("swinv2_cr", "swinv2_cr_tiny_224", {**_SWIN, "embed_dim": 32}),
    Family("pvt_v2", "pvt_v2_b0", {"depths": [1, 1, 1, 1]}, _SMALL),
    Family("twins_pcpvt", "twins_pcpvt_small", {"img_size": 64, "depths": [1, 1, 1, 1]}),
    Family("twins_svt", "twins_svt_small", {"img_size": 64, "depths": [2, 2, 2, 2]}),
    Family("xcit", "xcit_nano_12_p16_224", {"img_size": 64, "depth": 2}),
    Family("levit", "levit_128s", {"img_size": 64}, _SMALL),
    Family("crossvit", "crossvit_tiny_240", {"img_size": 120}),
    Family("convit", "convit_tiny", {"img_size": 32, "depth": 2, "local_up_to_layer": 1}),
    Family("tnt", "tnt_s_patch16_224", {"img_size": 32, "depth": 2}),
    Family("pit", "pit_ti_224", {"img_size": 64}),
    Family("coat", "coat_lite_tiny", {"img_size": 64}),
    Family("mvitv2", "mvitv2_tiny", {"img_size": 64}, _SMALL),
    Family("maxvit", "maxvit_pico_rw_256", {"img_size": 64}),
    Family("coatnet", "coatnet_pico_rw_224", {"img_size": 64}),
    Family("efficientformer", "efficientformer_l1", {}),
    Family("efficientformerv2", "efficientformerv2_s0", {"img_size": 64}, _SMALL),
    Family("efficientvit_mit", "efficientvit_b0", {}, _SMALL),
    Family("efficientvit_msra", "efficientvit_m0", {"img_size": 64}),
    Family("fastvit", "fastvit_sa12", {}, _SMALL),
    Family("nextvit", "nextvit_small", {}, _SMALL),
    Family("vitamin", "vitamin_small_224", {"img_size": 64}),
    Family("volo", "volo_d1_224", {"img_size": 64}, _SMALL),
    Family("gcvit", "gcvit_xxtiny", {"img_size": 64, "window_size": [2, 2, 2, 2]}, _SMALL),
    Family("davit", "davit_tiny", {"window_size": 4}, _SMALL),
    Family("hiera", "hiera_tiny_224", {"img_size": 64}, _SMALL),
    Family("tiny_vit", "tiny_vit_5m_224", {}),
    Family("mobilevit", "mobilevit_xxs", {}, _SMALL),
    Family("mobilevitv2", "mobilevitv2_050", {}, _SMALL),
    Family("edgenext", "edgenext_xx_small", {}, _SMALL),
    Family("samvit", "samvit_base_patch16", {"img_size": 64, "depth": 2, "window_size": 2, "global_attn_indexes": [1]}),
    Family("nest", "nest_tiny", {"img_size": 64}),
    Family("visformer", "visformer_tiny", {"img_size": 64}),
    Family("caformer", "caformer_s18", {}, _SMALL),
    Family("botnet", "botnet26t_256", {"img_size": 64}, _SMALL),
    Family("halonet", "halonet26t", {"img_size": 64}),
    Family("lambda", "lambda_resnet26t", {"img_size": 64}),
    Family("mobilenetv4_hybrid", "mobilenetv4_hybrid_medium_075", {}, _SMALL),
    Family("shvit", "shvit_s1", {}, _SMALL),
    Family("swiftformer", "swiftformer_xs", {}, _SMALL),
    Family("iformer", "iformer_t", {}, _SMALL),
)


def check_family(family: Family) -> FamilyResult:
    """Run the chain on one family; never raises for the model's sake, the result says what failed."""
    result = FamilyResult(family.family, family.model)
    start = time.perf_counter()
    step = "detect"
    try:
        recipe = recipe_from_data({"name": family.family, "model": _model_spec(family), "rewrites": [{"substitute": "bilstm"}]}, [])
        model = build_model(family.model, family.kwargs)
        sites = find_sites(model, example_input(model, input_size(model, family.input_size)))
        result.sites, result.attention_modules = len(sites), len(attention_modules(model))
        result.layouts = ", ".join(sorted({site.contract.describe for site in sites if site.contract}))
        step = "rewrite"
        plan, teacher, student = plan_and_build(recipe, "cpu")
        result.rewrite = True
        step = "forward"
        x = example_input(teacher, plan.input_size, batch=2)
        with torch.no_grad():
            expected, got = teacher.eval()(x), student.eval()(x)
        if got.shape != expected.shape:
            raise AssertionError(f"student output {tuple(got.shape)} vs teacher {tuple(expected.shape)}")
        result.forward = True
        step = "distill"
        distill_step(teacher, student, plan.selected_paths, x, classes=expected.shape[-1])
        result.distill = True
        step = "onnx"
        with tempfile.TemporaryDirectory() as workdir, contextlib.redirect_stdout(io.StringIO()):  # the exporter prints graphs on failure
            export_onnx(student, plan.input_size, Path(workdir) / "student.onnx", force=True)
        result.onnx = True
    except Exception as error:  # the table records any failure of third-party model code
        result.reason = f"{step}: {_first_line(error)}"
    result.seconds = time.perf_counter() - start
    return result


def distill_step(teacher: nn.Module, student: nn.Module, sites: list[str], images: torch.Tensor, classes: int) -> float:
    """One step of block-wise distillation (paper eq. 4) on random labels; the loss must reach every substitute."""
    objective = distill_objective(teacher.eval(), DistillStage(epochs=1, lr=1e-3), block_paths(sites), sites)
    trainable = [p for module in substitutes(student).values() for p in module.parameters()]
    optimizer = torch.optim.AdamW(trainable, lr=1e-3)
    student.train()
    labels = torch.randint(0, classes, (images.shape[0],))
    result = objective(student, images, labels)
    result.loss.backward()
    if not torch.isfinite(result.loss):
        raise AssertionError(f"distillation loss is {result.loss.item()}")
    detached = [path for path, module in substitutes(student).items() if all(p.grad is None for p in module.parameters())]
    if detached:
        raise AssertionError(f"the loss does not reach {', '.join(detached)}")
    optimizer.step()
    return result.loss.item()


def attention_modules(model: nn.Module) -> list[str]:
    """Innermost modules whose class is named like attention: the source's own count, to hold detection against."""
    named = [path for path, module in model.named_modules() if _ATTENTION_NAME.search(type(module).__name__)]
    return [path for path in named if not any(other.startswith(f"{path}.") for other in named)]


_ATTENTION_NAME = re.compile(r"attention|attn|^xca$|mhsa|mhca", re.IGNORECASE)


def check_families(families: tuple[Family, ...] = FAMILIES, progress: Callable[[FamilyResult], None] | None = None) -> Iterator[FamilyResult]:
    for family in families:
        result = check_family(family)
        if progress:
            progress(result)
        yield result


def coverage(results: list[FamilyResult]) -> float:
    return sum(r.ok for r in results) / max(len(results), 1)


def _model_spec(family: Family) -> dict[str, object]:
    spec: dict[str, object] = {"name": family.model, "kwargs": dict(family.kwargs)}
    if family.input_size:
        spec["input_size"] = list(family.input_size)
    return spec


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    where = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
    location = f" ({Path(where.filename).name}:{where.lineno})" if where and not isinstance(error, AssertionError) else ""
    return f"{type(error).__name__}: {text[0][:300] if text else ''}{location}"
