"""A quickstart-shaped recipe small enough to run end to end in seconds (shared by the run tests)."""

from __future__ import annotations

from pathlib import Path

TINY = """\
name: tiny
seed: 3
model:
  name: vit_tiny_patch16_224
  kwargs: {img_size: 8, patch_size: 2, in_chans: 1, num_classes: 10, embed_dim: 16, depth: 2, num_heads: 2}
rewrites:
  - select: {path: "blocks.*.attn"}
    substitute: bilstm
    params: {init: attention}
data: {kind: digits}
stages:
  - {kind: fit, epochs: 2, lr: 3.0e-3, warmup_epochs: 0, batch_size: 128}
  - {kind: distill, epochs: 3, lr: 3.0e-3, warmup_epochs: 0, batch_size: 128}
  - {kind: evaluate}
  - {kind: prune, epochs: 1, lr: 1.0e-3, warmup_epochs: 0, batch_size: 128, hoyer_weight: 1.0e-2, threshold: 0.3}
  - {kind: finetune, epochs: 1, lr: 1.0e-3, warmup_epochs: 0, batch_size: 128}
  - {kind: evaluate}
"""


def write_tiny_recipe(directory: Path) -> Path:
    path = directory / "tiny.yaml"
    path.write_text(TINY)
    return path
