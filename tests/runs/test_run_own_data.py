"""A user's own image folder: the model's classifier follows the data's classes, or the run is refused before it starts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from surgery.cli import app
from surgery.runs import RunDir, load_run
from surgery.runs.evaluate import evaluate_run
from tests.tiny import to_yaml, write_recipe

CLASSES = ("cat", "dog", "owl")


def _image_folder(root: Path, per_class: dict[str, int]) -> Path:
    generator = np.random.default_rng(0)
    for split, count in per_class.items():
        for index, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for image in range(count):
                pixels = generator.integers(0, 255, (24, 24, 3), dtype=np.uint8) // (index + 1)
                Image.fromarray(pixels).save(folder / f"{image}.png")
    return root


def _recipe(root: Path, kwargs: dict) -> dict:
    return {
        "name": "own",
        "seed": 0,
        "model": {"name": "deit_tiny_patch16_224", "kwargs": {"img_size": 32, "patch_size": 8, "depth": 1, "embed_dim": 32, "num_heads": 2, **kwargs}},
        "rewrites": [{"select": {"path": "blocks.*.attn"}, "substitute": "bilstm"}],
        "data": {"kind": "folder", "root": str(root), "workers": 0, "auto_augment": None, "mixup": 0.0, "cutmix": 0.0, "reprob": 0.0},
        "stages": [{"kind": "distill", "epochs": 1, "lr": 1.0e-3, "warmup_epochs": 0, "batch_size": 8}, {"kind": "evaluate"}],
    }


@pytest.mark.slow
def test_a_deit_on_a_three_class_folder_gets_a_three_class_head_and_says_so(tmp_path: Path):
    root = _image_folder(tmp_path / "images", {"train": 8, "validation": 3})
    recipe = write_recipe(tmp_path, _recipe(root, {}))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["apply", str(recipe), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "its head starts as a new 3-class classifier" in result.stderr
    report = json.loads(RunDir(out).report_json.read_text())
    assert report["head"].startswith("deit_tiny_patch16_224 predicts 1000 classes and the data has 3")
    assert "Classifier: deit_tiny_patch16_224 predicts 1000 classes" in RunDir(out).report_md.read_text()
    assert load_run(out).get_classifier().out_features == 3  # the resolved recipe replays the same head
    again = evaluate_run(RunDir(out))  # a fresh process preprocesses the folder as the run did
    assert {which: again[which]["top1"] for which in again} == {which: report[which]["top1"] for which in ("teacher", "student")}


def test_a_stated_class_count_that_disagrees_with_the_data_is_refused_at_its_line(tmp_path: Path):
    root = _image_folder(tmp_path / "images", {"train": 1, "validation": 1})
    recipe = tmp_path / "own.yaml"
    recipe.write_text(to_yaml(_recipe(root, {"num_classes": 5})))
    result = CliRunner().invoke(app, ["apply", str(recipe), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert line.startswith(f"{recipe}:") and line.endswith("the model predicts 5 classes but the data has 3")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("stated", [None, 3])
def test_validate_checks_the_head_against_the_folder_or_the_stated_count(tmp_path: Path, stated: int | None):
    root = _image_folder(tmp_path / "images", {"train": 1, "validation": 1})
    data = _recipe(root, {"num_classes": 5})
    data["data"]["num_classes"] = stated
    recipe = tmp_path / "own.yaml"
    recipe.write_text(to_yaml(data))
    result = CliRunner().invoke(app, ["validate", str(recipe)])
    assert result.exit_code == 2
    assert re.fullmatch(rf"{recipe}:5:\d+: the model predicts 5 classes but the data has 3", result.stderr.strip())


def test_validate_says_a_head_will_be_reset_and_passes_a_folder_not_on_disk_yet(tmp_path: Path):
    root = _image_folder(tmp_path / "images", {"train": 1, "validation": 1})
    fitted = CliRunner().invoke(app, ["validate", str(write_recipe(tmp_path, _recipe(root, {})))])
    assert fitted.exit_code == 0 and "note: deit_tiny_patch16_224 predicts 1000 classes and the data has 3" in fitted.stdout
    elsewhere = CliRunner().invoke(app, ["validate", str(write_recipe(tmp_path, _recipe(tmp_path / "absent", {"num_classes": 5})))])
    assert elsewhere.exit_code == 0 and "note" not in elsewhere.stdout, elsewhere.output
