"""The recipe schema: what a recipe file may say, checked by pydantic, described in JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, JsonValue, PrivateAttr, ValidationInfo, field_validator, model_validator

from surgery.errors import Location
from surgery.recipe.data import Data
from surgery.recipe.search import Search
from surgery.recipe.selector import Selector
from surgery.recipe.stages import HaltingGate, Stage
from surgery.recipe.strict import StrictModel
from surgery.recipe.tree import KeyPath, Locations, nearest_location


class ModelSpec(StrictModel):
    """The model to operate on (the teacher): a timm model, or a Hugging Face `transformers` text model."""

    name: str
    """timm model name, optionally with a pretrained tag (deit_tiny_patch16_224.fb_in1k); transformers: a directory, a hub id, or all-MiniLM-L6-v2."""
    source: Literal["timm", "transformers"] = "timm"
    """Where the model comes from: timm, or Hugging Face transformers (a text encoder taking token ids)."""
    pretrained: bool = False
    """Load the pretrained weights (through timm, or transformers' from_pretrained); false builds random weights from the config."""
    checkpoint: Path | None = None
    """Local weights file loaded through timm (relative paths start at the working directory); timm models only."""
    kwargs: dict[str, JsonValue] = {}
    """Extra keyword arguments of timm.create_model (img_size, num_classes, ...), or transformers config fields (num_hidden_layers, ...)."""
    input_size: tuple[int, ...] | None = None
    """One example: (C, H, W) for timm, none takes the pretrained_cfg; [N] tokens for transformers, none takes max_position_embeddings."""
    from_run: Path | None = None
    """A finished run to start from (downstream transfer): the loader takes name, source, kwargs and input_size from its
    recipe (kwargs written here win; num_classes follows this recipe's data), and `surgery apply` its weights, with the
    classifier reset to this recipe's data (relative paths start at the working directory)."""
    made_by: Path | None = None
    """The recipe that makes from_run: while that run is not there yet, its model (and a student's rewrites) are read
    from this recipe instead, so validate and plan can check a transfer before its source is trained; `surgery apply`
    still needs the finished run (relative paths start at the working directory)."""
    halting: HaltingGate | None = None
    """The model halts tokens (A-ViT) from the start: weights trained with halting, or a from_run whose teacher had a
    halt stage (the loader fills this in); none leaves halting to the recipe's halt stages."""
    use: Literal["student", "teacher"] = "student"
    """Which model of from_run: its final student (pruned if it was), which brings the run's rewrites and pruned shapes;
    or its teacher, rewritten by this recipe's rewrites (none: the attention model itself is trained, the baseline)."""

    @field_validator("input_size")
    @classmethod
    def _size_of_source(cls, size: tuple[int, ...] | None, info: ValidationInfo) -> tuple[int, ...] | None:
        text = info.data.get("source") == "transformers"
        if size is not None and len(size) != (1 if text else 3):
            raise ValueError("a transformers model takes [N] tokens" if text else "a timm model takes [C, H, W]")
        if size is not None and min(size) < 1:
            raise ValueError(f"sizes must be positive, got {list(size)}")
        return size

    @model_validator(mode="after")
    def _one_weight_source(self) -> ModelSpec:
        if self.pretrained and self.checkpoint is not None:
            raise ValueError("pretrained and checkpoint are mutually exclusive; keep one weight source")
        if self.source == "transformers" and self.checkpoint is not None:
            raise ValueError("checkpoint is read by timm; a transformers model loads its weights from name (pretrained: true)")
        if self.from_run is not None and (self.pretrained or self.checkpoint is not None):
            raise ValueError("from_run loads the run's weights; drop pretrained and checkpoint")
        if self.from_run is None and self.made_by is not None:
            raise ValueError("made_by names the recipe that makes from_run; give from_run: DIR, or drop made_by")
        if self.from_run is None and self.use != "student":
            raise ValueError("use chooses a model of from_run; give from_run: DIR, or drop use")
        return self


class Rewrite(StrictModel):
    """Replace the selected sites with a registered substitute."""

    select: Selector = Selector()
    """Which sites to replace."""
    substitute: str = "bilstm"
    """Registered substitute name."""
    params: dict[str, JsonValue] = {}
    """Keyword options of the substitute's from_site."""
    token_order: Literal["raster", "snake", "column", "multiscan"] = "raster"
    """Order in which the substitute reads a 2-D token grid: raster (the paper's), snake, column-major, or the mean of four scans."""


class ExportSpec(StrictModel):
    """ONNX export of the student and its parity check."""

    onnx: bool = True
    """Export the student to ONNX."""
    opset: int = Field(17, ge=7, le=20)
    """ONNX opset version: 7 to 20, the range torch's TorchScript exporter (which exports LSTMs as LSTM nodes) writes."""
    dynamic_batch: bool = True
    """Leave the batch dimension symbolic."""
    atol: float = Field(1e-4, gt=0)
    """Largest absolute difference allowed between ONNX Runtime and PyTorch outputs."""


class HardwareSpec(StrictModel):
    """The ReRAM in-memory-computing cost model and its GPU baseline."""

    preset: str = "isaac"
    """Crossbar device preset."""
    policy: Literal["write", "digital"] = "write"
    """How activation x activation products are priced: written into crossbars, or in digital units."""
    gpu: str = "a100"
    """GPU of the roofline baseline."""
    overrides: dict[str, JsonValue] = {}
    """Preset fields replaced by these values: dotted paths (adc.bits: 6) or nested mappings (adc: {bits: 6})."""


class Recipe(StrictModel):
    """A whole recipe: the model, the rewrites, the stages that recover it, and what to report."""

    extends: str | None = None
    """Base recipe path, relative to this file; the loader merges it in, so a loaded recipe has none."""
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    """Run name: the folder under runs/."""
    seed: int = 0
    """Seed of every random number generator."""
    model: ModelSpec
    """The teacher."""
    search: Search | None = None
    """Rewrites chosen per site under a cost budget by `surgery search`, instead of written; none writes them."""
    rewrites: list[Rewrite] = Field([], validate_default=True)
    """Site replacements, applied in order."""
    stages: list[Stage] = []
    """Training and evaluation stages, run in order."""
    data: Data | None = None
    """Image source; none allows only data-free commands (plan, export, cost)."""
    export: ExportSpec = ExportSpec()
    """ONNX export."""
    hardware: HardwareSpec = HardwareSpec()
    """Hardware cost model."""

    _locations: Locations = PrivateAttr(default_factory=dict)

    @field_validator("rewrites")
    @classmethod
    def _something_to_rewrite(cls, rewrites: list[Rewrite], info: ValidationInfo) -> list[Rewrite]:
        model = info.data.get("model")
        if "search" not in info.data:  # an invalid search says what is wrong with it
            return rewrites
        if info.data["search"] is not None and rewrites:
            raise ValueError(
                "a search chooses the rewrites itself; drop rewrites (`rewrites: []` over a base recipe's; "
                "a student from_run brings its own: search its teacher, model.use: teacher)"
            )
        if not rewrites and info.data["search"] is None and (model is None or model.from_run is None):
            raise ValueError("give at least one rewrite, or a search; only a model from a finished run (model.from_run) may be trained as it is")
        return rewrites

    @model_validator(mode="after")
    def _keep_locations(self, info: ValidationInfo) -> Recipe:
        """Keeps the source map the loader passes as validation context, for later error messages."""
        self._locations = dict((info.context or {}).get("locations", {}))
        return self

    def location_of(self, path: KeyPath) -> Location | None:
        """Where `path` (or its nearest recorded parent) was written; None for recipes built in code.

        Example:
            >>> recipe.location_of(("rewrites", 0, "params", "heads"))  # doctest: +SKIP
            Location(file='recipes/deit_far.yaml', line=12, column=7)
        """
        return nearest_location(self._locations, path)


def recipe_json_schema() -> dict[str, Any]:
    """JSON Schema of a recipe file, keyed by the names written in YAML (aliases)."""
    return Recipe.model_json_schema(by_alias=True)


def recipe_json_schema_text() -> str:
    """The exact text of recipes/recipe.schema.json: pretty, sorted keys, trailing newline."""
    return json.dumps(recipe_json_schema(), indent=2, sort_keys=True) + "\n"
