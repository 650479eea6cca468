"""ONNX export and latency of a text encoder: a two-layer BERT of 4 heads x 8 built from a config, every self-attention a BiLSTM.

The export is the sentence embedding (`input_ids`, `attention_mask` -> `sentence_embedding`), dynamic in batch and
sequence; padded rows must give each sentence the embedding it has alone.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from safetensors.torch import save_model
from typer.testing import CliRunner

from far_modules import shrink_uniformly
from surgery.cli import app
from surgery.deploy.bench import BenchSettings, sequence_latency
from surgery.deploy.export import EMBEDDING, TOKENS, Models, check_parity, export_onnx, models_from_recipe, parity_inputs, token_batch
from surgery.errors import SurgeryError
from surgery.recipe import dump_recipe, load_recipe
from surgery.rewrite.plan import plan
from surgery.rewrite.student import build_student
from surgery.runs import RunDir, load_run
from surgery.runs.record import SurgeryRecord
from surgery.sentence import SentenceEncoder
from tests.strategies import single_thread  # noqa: F401 - a fixture, used through pytestmark
from tests.text import write_bert_far_recipe

pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("single_thread")

LSTMS = 2 * 4 * 2  # layers x heads x directions
runner = CliRunner()


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    """A recipe naming a tiny BERT saved to disk (random weights, 64 positions), read at 16 tokens."""
    config = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64, "vocab_size": 100, "max_position_embeddings": 64}
    return write_bert_far_recipe(tmp_path_factory.mktemp("text"), 16, **config)


@pytest.fixture(scope="module")
def models(recipe) -> Models:
    torch.manual_seed(0)
    return models_from_recipe(load_recipe(recipe))


@pytest.fixture(scope="module")
def exported(models, tmp_path_factory):
    return export_onnx(models.student, models.input_size, tmp_path_factory.mktemp("onnx") / "far.onnx")


def embed(model: torch.nn.Module, feed: dict[str, torch.Tensor]) -> np.ndarray:
    with torch.no_grad():
        return SentenceEncoder(model).eval()(*feed.values()).numpy()


def test_the_export_is_the_sentence_embedding_dynamic_in_batch_and_sequence(exported):
    graph = onnx.load(str(exported.path)).graph
    assert [i.name for i in graph.input] == list(TOKENS) and [o.name for o in graph.output] == [EMBEDDING]
    for tensor in graph.input:
        assert [d.dim_param for d in tensor.type.tensor_type.shape.dim] == ["batch", "sequence"]
        assert tensor.type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert exported.input_size == (16,) and exported.to_json()["input_size"] == [16]


def test_one_native_lstm_node_per_layer_head_and_direction_and_no_loops(exported):
    ops = [node.op_type for node in onnx.load(str(exported.path)).graph.node]
    assert exported.recurrent_nodes["LSTM"] == LSTMS == ops.count("LSTM")
    assert not set(ops) & {"Loop", "Scan"}
    assert exported.max_abs_diff <= 1e-4


@pytest.mark.parametrize(("batch", "length"), [(3, 16), (2, 40)])
def test_onnx_runtime_matches_pytorch_on_padded_batches_at_any_length(models, exported, batch, length):
    session = ort.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    real = [length - 5 * row for row in range(batch)]  # rows padded at the end, each by a different amount
    feed = token_batch(models.student, length, real, torch.Generator().manual_seed(batch))
    got = session.run([EMBEDDING], {name: x.numpy() for name, x in feed.items()})[0]
    assert got.shape == (batch, 32)
    np.testing.assert_allclose(got, embed(models.student, feed), atol=1e-4, rtol=0)
    last = {name: x[-1:, : real[-1]] for name, x in feed.items()}  # the shortest sentence, alone and unpadded
    alone = session.run([EMBEDDING], {name: x.numpy() for name, x in last.items()})[0]
    np.testing.assert_allclose(got[-1:], alone, atol=1e-5, rtol=0)


def test_parity_is_checked_on_padded_rows_at_two_lengths(models):
    inputs = parity_inputs(models.student, (16,), (1, 3))
    lengths = {feed["input_ids"].shape[1] for _, feed in inputs}
    padded = [where for where, feed in inputs if not feed["attention_mask"].all()]
    assert lengths == {16, 8} and {feed["input_ids"].shape[0] for _, feed in inputs} == {1, 3}
    assert any(w.startswith("batch 1,") for w in padded) and any(w.startswith("batch 3,") for w in padded)


def test_a_parity_failure_of_a_text_export_is_an_error(models, exported):
    changed = copy.deepcopy(models.student)
    with torch.no_grad():
        changed.encoder.layer[1].output.LayerNorm.bias += 1e-2
    with pytest.raises(SurgeryError, match="differs from PyTorch"):
        check_parity(changed, exported.path, models.input_size, 1e-4)


def test_the_teacher_exports_too(models, tmp_path):
    result = export_onnx(models.teacher, models.input_size, tmp_path / "bert.onnx")
    assert result.recurrent_nodes["LSTM"] == 0 and result.max_abs_diff <= 1e-4


def test_sequence_latency_gives_a_positive_median_per_length_and_leaves_the_model_alone(models, tmp_path):
    student = copy.deepcopy(models.student).train()
    timings = sequence_latency(student, [8, 24], BenchSettings(runs=3, warmup=1, eager=False), tmp_path / "work")
    assert list(timings) == [8, 24]
    assert all(0 < t.min <= t.median <= t.max for t in timings.values())
    assert student.training and list((tmp_path / "work").iterdir()) == []


def test_sequence_latency_refuses_lengths_beyond_the_position_table(models, tmp_path):
    with pytest.raises(SurgeryError, match="takes 1 to 64 tokens; cannot time sequences of \\[65\\] tokens"):
        sequence_latency(models.student, [16, 65], BenchSettings(runs=1, warmup=0), tmp_path)


def test_cli_export_of_a_text_recipe(recipe, tmp_path):
    out = tmp_path / "far.onnx"
    result = runner.invoke(app, ["export", str(recipe), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"{LSTMS} LSTM nodes" in result.output and "sequence dynamic (input_ids, attention_mask -> sentence_embedding)" in result.output


def test_cli_bench_of_a_text_recipe_times_both_models_at_each_length(recipe):
    args = ["bench", str(recipe), "--seq-len", "8", "--seq-len", "24", "--runs", "2", "--warmup", "0", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    teacher = str(recipe.parent / "bert")
    assert [(row["model"], row["tokens"]) for row in report["rows"]] == [(teacher, 8), ("FAR", 8), (teacher, 24), ("FAR", 24)]
    assert all(row["onnx"]["median"] > 0 and row["eager"]["median"] > 0 and row["params"] > 0 for row in report["rows"])
    assert [(r["model"], r["tokens"]) for r in report["ratios"]] == [("FAR", 8), ("FAR", 24)]
    assert report["machine"]["isa"] and report["machine"]["cpu"]


def test_cli_bench_text_table_names_tokens_and_the_cpu(recipe):
    result = runner.invoke(app, ["bench", str(recipe), "--seq-len", "8", "--runs", "1", "--warmup", "0", "--no-eager", "--precision", "int8"])
    assert result.exit_code == 0, result.output
    assert "tokens" in result.output and "ONNX Runtime 1." in result.output
    assert re.search(r"FAR/.*bert at 8 tokens: ONNX Runtime ×\d+\.\d\d", result.output)


def test_cli_bench_refuses_an_image_size_for_a_text_encoder(recipe):
    result = runner.invoke(app, ["bench", str(recipe), "--img-size", "224"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "--img-size: a text encoder is timed at sequence lengths; give --seq-len N (default 128, 256 and 512)"


@pytest.fixture(scope="module")
def text_run(recipe, tmp_path_factory) -> Path:
    """A finished run directory as `apply` leaves it, written by hand: a pruned student (half the LSTM units) and its record."""
    loaded = load_recipe(recipe)
    torch.manual_seed(1)
    teacher = models_from_recipe(loaded).teacher
    surgery_plan = plan(loaded, teacher)
    student = shrink_uniformly(build_student(teacher, surgery_plan), 0.5).eval()
    run = RunDir(tmp_path_factory.mktemp("text-run") / "run")
    run.root.mkdir()
    run.recipe.write_text(dump_recipe(loaded))
    save_model(teacher, str(run.teacher_weights))
    save_model(student, str(run.student_weights))
    run.record.write_text(json.dumps(SurgeryRecord.of(student, surgery_plan.steps).to_json()))
    return run.root


def test_cli_export_of_a_text_run_writes_the_trained_student(text_run):
    result = runner.invoke(app, ["export", str(text_run)])
    assert result.exit_code == 0, result.output
    hidden = [a.i for n in onnx.load(str(text_run / "student.onnx")).graph.node if n.op_type == "LSTM" for a in n.attribute if a.name == "hidden_size"]
    assert hidden == [4] * LSTMS  # 8 units per head and direction, half kept


def test_cli_bench_of_a_text_run_through_run_option(recipe, text_run):
    args = ["bench", str(recipe), "--run", str(text_run), "--seq-len", "8", "--runs", "1", "--warmup", "0", "--no-eager", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = {row["model"]: row for row in json.loads(result.stdout)["rows"]}
    assert rows["FAR"]["params"] == sum(p.numel() for p in load_run(text_run).parameters())
