"""`surgery analyze RUN --maps`: a finished run's teacher and student token dependencies, side by side and ranked.

Both models see the same validation images. Per replaced site: the teacher's
attention per head, the student's saliency as a whole and per head and
direction (`surgery.analyze.dependency`); per block holding a site, the
cumulative attribution from the patch embedding (`surgery.analyze.attribution`);
then their rank correlations (`surgery.analyze.agreement`) and figures
(`surgery.analyze.map_figures`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from surgery.analyze.agreement import BlockAgreement, BlockMaps, compare
from surgery.analyze.attribution import cumulative_attribution
from surgery.analyze.dependency import HeadKey, head_saliency, saliency, site_inputs
from surgery.analyze.map_figures import plot_heads, plot_overview
from surgery.detect.sparsity import attention_sparsity, validation_images
from surgery.errors import SurgeryError
from surgery.models import input_size
from surgery.recipe import Recipe
from surgery.rewrite.adapters import SiteAdapter
from surgery.runs import RunDir, load_run


@dataclass(frozen=True)
class MapsReport:
    """The maps of every block with a replaced token site, their correlations, and the figures drawn from them."""

    blocks: list[BlockMaps]
    agreements: list[BlockAgreement]
    figures: list[Path]
    images: int

    def to_json(self) -> dict[str, object]:
        return {"images": self.images, "figures": [str(p) for p in self.figures], "blocks": [a.to_json() for a in self.agreements]}


def dependency_maps(run: RunDir, recipe: Recipe, images: int = 8, out: Path | None = None) -> MapsReport:
    """Maps, correlations and figures of a finished run on `images` validation images; figures in `out` (default `<run>/plots/dependency/`).

    Example:
        >>> report = dependency_maps(RunDir(Path("runs/quickstart")), load_recipe("runs/quickstart/recipe.resolved.yaml"))  # doctest: +SKIP
        >>> [round(a.attribution, 2) for a in report.agreements]  # doctest: +SKIP
    """
    student, teacher = load_run(run.root).eval(), load_run(run.root, "teacher").eval()
    adapters = token_sites(student)
    if not adapters:
        raise SurgeryError(f"{run.root}: no replaced site maps tokens to tokens, so there is no token dependency to draw")
    batch = validation_images(recipe, student, input_size(student, recipe.model.input_size), 1, images)
    maps = measure_maps(teacher, student, adapters, batch)
    agreements = [compare(m) for m in maps]
    folder = out or run.plots / "dependency"
    figures = [plot_overview(maps, agreements, folder / "overview.png")]
    figures += [plot_heads(m, a, folder / f"{m.site}.png") for m, a in zip(maps, agreements)]
    return MapsReport(maps, agreements, figures, sum(len(b) for b in batch))


def measure_maps(teacher: nn.Module, student: nn.Module, adapters: dict[str, SiteAdapter], batch: list[torch.Tensor]) -> list[BlockMaps]:
    """Every map of the blocks holding `adapters` (student site paths in graph order), over `batch`."""
    blocks = [_block_of(path) for path in adapters]
    try:
        attention = {result.path: result.attention for result in attention_sparsity(teacher, list(adapters), batch)}
        teacher_attribution, student_attribution = (cumulative_attribution(model, blocks, batch) for model in (teacher, student))
    except ValueError as error:
        raise SurgeryError(f"dependency maps of {blocks[0]}..{blocks[-1]}: {error}") from error
    maps = []
    for block, (path, adapter) in zip(blocks, adapters.items()):
        student_map, heads = _student_maps(adapter, site_inputs(student, path, batch))
        attributions = teacher_attribution[block], student_attribution[block]
        maps.append(BlockMaps(block, path, attention[path], student_map, heads, *attributions, prefix=adapter.contract.prefix))
    return maps


def _student_maps(adapter: SiteAdapter, inputs: list[torch.Tensor]) -> tuple[torch.Tensor, dict[HeadKey, torch.Tensor]]:
    """The site's saliency, and per head and direction where the substitute reads the site's tokens in their own (raster) order."""
    heads = head_saliency(adapter, adapter.current_substitute(), inputs) if adapter.order == "raster" else {}
    return saliency(adapter, inputs), heads


def token_sites(student: nn.Module) -> dict[str, SiteAdapter]:
    """Replaced sites that map (B, N, C) tokens to as many tokens, in module order."""
    return {
        path: module
        for path, module in student.named_modules()
        if isinstance(module, SiteAdapter) and (module.contract.layout, module.contract.output, module.contract.stride) == ("tokens", "same", 1)
    }


def _block_of(path: str) -> str:
    """The module holding a site: its cumulative attribution is read at that module's output."""
    if "." not in path:
        raise SurgeryError(f"{path}: a site at the top of the model has no block around it to attribute through")
    return path.rsplit(".", 1)[0]
