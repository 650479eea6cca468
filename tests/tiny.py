"""The tiny ViT the tests share and the recipes built on it: one that plans, prices and exports in about a second,
and one that trains end to end on the embedded digits in seconds.

Both rewrite every attention of a two-block, two-head `vit_tiny_patch16_224` that sees 17 tokens
(16 patches and the class token) with a BiLSTM. Recipes come out as fresh data to change at will,
or as YAML laid out like the files in recipes/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MODEL = "vit_tiny_patch16_224"
# 32x32 RGB in 8x8 patches, two blocks of two 16-wide heads.
KWARGS: dict[str, int] = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}
# The same blocks, heads and tokens sized for the embedded digits: 8x8 grey images in 2x2 patches, ten classes, 8-wide heads.
DIGITS_KWARGS: dict[str, int] = {**KWARGS, "img_size": 8, "patch_size": 2, "in_chans": 1, "num_classes": 10, "embed_dim": 16}
# Teacher fit, distillation, pruning and finetuning, each an epoch or three, evaluated before and after pruning.
DIGITS_STAGES: tuple[dict[str, Any], ...] = (
    {"kind": "fit", "epochs": 2, "lr": 3.0e-3, "warmup_epochs": 0, "batch_size": 128},
    {"kind": "distill", "epochs": 3, "lr": 3.0e-3, "warmup_epochs": 0, "batch_size": 128},
    {"kind": "evaluate"},
    {"kind": "prune", "epochs": 1, "lr": 1.0e-3, "warmup_epochs": 0, "batch_size": 128, "hoyer_weight": 1.0e-2, "threshold": 0.3},
    {"kind": "finetune", "epochs": 1, "lr": 1.0e-3, "warmup_epochs": 0, "batch_size": 128},
    {"kind": "evaluate"},
)


def recipe_data(*, trained: bool = False) -> dict[str, Any]:
    """The tiny recipe as loaded YAML, a new copy per call.

    Without `trained`: model and rewrite only, for planning, pricing, benchmarking and export.
    With it: the digits model, seeded, its BiLSTMs initialised from attention, the digits data and `DIGITS_STAGES`.
    """
    rewrite: dict[str, Any] = {"select": {"path": "blocks.*.attn"}, "substitute": "bilstm"}
    if not trained:
        return {"name": "tiny", "model": {"name": MODEL, "kwargs": dict(KWARGS)}, "rewrites": [rewrite]}
    return {
        "name": "tiny",
        "seed": 3,
        "model": {"name": MODEL, "kwargs": dict(DIGITS_KWARGS)},
        "rewrites": [{**rewrite, "params": {"init": "attention"}}],
        "data": {"kind": "digits"},
        "stages": [dict(stage) for stage in DIGITS_STAGES],
    }


def to_yaml(data: dict[str, Any]) -> str:
    """`data` as YAML: one key per line, lists indented under their key, flat mappings and lists inline."""
    return yaml.dump(data, Dumper=_IndentedDumper, sort_keys=False, default_flow_style=None, width=120)


def write_recipe(directory: Path, recipe: str | dict[str, Any]) -> Path:
    """`directory`/tiny.yaml holding `recipe`, YAML text or data."""
    path = directory / "tiny.yaml"
    path.write_text(recipe if isinstance(recipe, str) else to_yaml(recipe))
    return path


class _IndentedDumper(yaml.SafeDumper):
    """Indents a list's items under their key (PyYAML puts them at the key's column)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)
