"""What the CLI golden tests share: a runner and a tiny recipe that plans in about a second."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from surgery.cli import app

TINY_RECIPE = """\
name: tiny
model:
  name: vit_tiny_patch16_224
  kwargs: {img_size: 32, patch_size: 8, depth: 2}
rewrites:
  - select: {path: "blocks.*.attn"}
    substitute: bilstm
"""

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def write_recipe(tmp_path: Path, text: str = TINY_RECIPE) -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return str(path)
