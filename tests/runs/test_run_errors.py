"""Bad input to a run: clear errors, and nothing lost or half-written."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import timm
from safetensors.torch import save_file
from typer.testing import CliRunner

from surgery.cli import app
from surgery.data import build_loaders
from surgery.errors import SurgeryError
from surgery.models import build_model
from surgery.recipe import FitStage, SyntheticData
from surgery.train import Engine, NonFiniteLoss, StepResult, init_distributed
from surgery.train.metrics import MetricsLog
from tests.tiny import recipe_data, write_recipe

runner = CliRunner()


def test_missing_dataset_folder_is_refused_before_the_run_directory_exists(tmp_path: Path):
    data = recipe_data(trained=True)
    data["data"] = {"kind": "folder", "root": str(tmp_path / "nowhere")}
    recipe = write_recipe(tmp_path, data)
    result = runner.invoke(app, ["apply", str(recipe), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert re.match(rf"{recipe}:\d+:\d+: data\.root: {tmp_path / 'nowhere'} does not exist", result.stderr), result.stderr
    assert not (tmp_path / "out").exists()


def test_checkpoint_whose_shapes_do_not_fit_is_one_clear_line(tmp_path: Path):
    other = timm.create_model("vit_tiny_patch16_224", img_size=8, patch_size=2, in_chans=1, num_classes=10, embed_dim=32, depth=1, num_heads=2)
    path = tmp_path / "other.safetensors"
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, path)
    kwargs = {"img_size": 8, "patch_size": 2, "in_chans": 1, "num_classes": 10, "embed_dim": 16, "depth": 1, "num_heads": 2}
    with pytest.raises(SurgeryError, match="size mismatch") as caught:
        build_model("vit_tiny_patch16_224", kwargs, checkpoint=str(path))
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_non_finite_loss_stops_with_the_step_and_the_last_checkpoint(tmp_path: Path):
    model = timm.create_model("vit_tiny_patch16_224", img_size=8, patch_size=4, in_chans=1, num_classes=2, embed_dim=8, depth=1, num_heads=1)
    stage = FitStage(epochs=3, lr=1e-3, warmup_epochs=0, batch_size=8)
    loaders = build_loaders(SyntheticData(num_samples=16, num_classes=2), (1, 8, 8), 8)
    calls = []

    def objective(m, images, labels):
        calls.append(1)
        loss = m(images).sum() * (math.nan if len(calls) == 3 else 0.0)
        return StepResult(loss, {})

    saved = tmp_path / "epoch-1"
    engine = Engine(
        model, list(model.named_parameters()), stage, loaders, init_distributed("cpu"), label="fit", stage_index=0,
        objective=objective, evaluate=lambda m: {}, save=lambda *a: saved, log=MetricsLog(None),
    )
    with pytest.raises(NonFiniteLoss, match=f"nan at epoch 2, step 3; last good checkpoint: {saved}"):
        engine.run()


def test_a_late_stages_batch_larger_than_the_training_split_is_refused_before_anything_is_written(tmp_path: Path):
    data = recipe_data(trained=True)
    data["stages"][4]["batch_size"] = 4096  # the finetune after pruning: hours into a real run
    recipe = write_recipe(tmp_path, data)
    result = runner.invoke(app, ["apply", str(recipe), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith(f"{recipe}:")
    assert line.endswith(": 1437 training images per process is fewer than one batch of 4096")
    assert not (tmp_path / "out").exists()


def test_a_dry_run_prints_what_it_checked_and_writes_nothing(tmp_path: Path):
    data = recipe_data(trained=True)
    data["stages"][1]["lr_base_batch"] = 512
    recipe = write_recipe(tmp_path, data)
    result = runner.invoke(app, ["apply", str(recipe), "--out", str(tmp_path / "out"), "--dry-run"])
    assert result.exit_code == 0, result.output
    checked = [line.split(" ", 2)[1] for line in result.stdout.splitlines()]
    assert checked == ["recipe", "learning", "classifier:", "batches:", "plan:", "output:"]
    assert "plan: 2 sites replaced (bilstm)" in result.stdout
    assert "learning rates: stages.0 fit 0.003, stages.1 distill 0.00075 (0.003 × 128 / 512), stages.3 prune 0.001, " in result.stdout
    assert not (tmp_path / "out").exists()


def test_a_prune_stage_without_a_prunable_substitute_is_refused_before_anything_is_written(tmp_path: Path):
    data = recipe_data(trained=True)
    data["rewrites"][0] = {"select": {"path": "blocks.*.attn"}, "substitute": "conv"}
    recipe = write_recipe(tmp_path, data)
    result = runner.invoke(app, ["apply", str(recipe), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.stderr.strip().endswith(": prune needs a prunable substitute (bigru, bilstm); this recipe uses conv")
    assert not (tmp_path / "out").exists()


def test_a_pruning_distill_stage_without_a_prunable_substitute_is_refused_at_its_hoyer_weight(tmp_path: Path):
    data = recipe_data(trained=True)
    data["rewrites"][0] = {"select": {"path": "blocks.*.attn"}, "substitute": "conv"}
    data["stages"] = [data["stages"][0], {**data["stages"][1], "hoyer_weight": 1.0, "threshold": 0.5}]
    recipe = write_recipe(tmp_path, data)
    result = runner.invoke(app, ["apply", str(recipe), "--out", str(tmp_path / "out"), "--dry-run"])
    assert result.exit_code == 2
    line = next(number for number, text in enumerate(recipe.read_text().splitlines(), 1) if "hoyer_weight" in text)
    assert re.match(rf"{recipe}:{line}:\d+: distill with a hoyer_weight needs a prunable substitute \(bigru, bilstm\); this recipe uses conv", result.stderr)
