"""Batches and threads of the bench: exports traced at a batch, sessions and PyTorch on the threads asked, and refusals."""

from __future__ import annotations

import os
from pathlib import Path

import onnx
import pytest
import torch
from typer.testing import CliRunner

from surgery.cli import app
from surgery.deploy.bench import available_cores, batch_runner, cpu_threads, eager_runner, ort_session, thread_count
from surgery.deploy.export import Models, export_onnx, models_from_recipe
from surgery.errors import SurgeryError
from surgery.recipe import load_recipe, recipe_from_data
from surgery.recipe.schema import ExportSpec
from tests.text import write_bert_far_recipe
from tests.tiny import recipe_data

runner = CliRunner()
SHAPE = (3, 32, 32)
CLASSES = 1000


@pytest.fixture(scope="module")
def models() -> Models:
    torch.manual_seed(0)
    return models_from_recipe(recipe_from_data(recipe_data(), []))


@pytest.fixture(scope="module")
def batch_of_three(models, tmp_path_factory) -> Path:
    spec = ExportSpec(dynamic_batch=False)
    return export_onnx(models.student, SHAPE, tmp_path_factory.mktemp("onnx") / "far-b3.onnx", spec, force=True, batch=3).path


def test_an_export_at_a_batch_fixes_that_batch_in_the_graph(batch_of_three):
    dims = onnx.load(str(batch_of_three)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [3, *SHAPE]


def test_one_call_runs_the_whole_batch(models, batch_of_three):
    assert batch_runner(ort_session(batch_of_three), SHAPE, 3)()[0].shape == (3, CLASSES)
    assert eager_runner(models.student, SHAPE, "fp32", batch=3)().shape == (3, CLASSES)


@pytest.mark.parametrize("threads", [1, 2])
def test_the_session_takes_the_threads_asked_and_one_inter_op_thread(batch_of_three, threads):
    options = ort_session(batch_of_three, threads=threads).get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads, options.enable_cpu_mem_arena) == (threads, 1, False)


def test_threads_of_a_pool_sleep_between_runs(batch_of_three):
    assert ort_session(batch_of_three, threads=2).get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this OS")
def test_one_thread_is_pinned_to_one_core_and_more_are_not():
    before, torch_threads = os.sched_getaffinity(0), torch.get_num_threads()
    with cpu_threads(1, pin=True):
        assert len(os.sched_getaffinity(0)) == 1 and torch.get_num_threads() == 1
    with cpu_threads(2, pin=True):
        assert os.sched_getaffinity(0) == before and torch.get_num_threads() == 2
    assert os.sched_getaffinity(0) == before and torch.get_num_threads() == torch_threads


@pytest.mark.parametrize(("value", "expected"), [("1", 1), ("0", available_cores()), ("all", available_cores()), (" ALL ", available_cores())])
def test_thread_count_reads_a_count_or_all_cores(value, expected):
    assert thread_count(value) == expected


@pytest.mark.parametrize("value", ["-2", "two", str(available_cores() + 1)])
def test_thread_count_refuses_what_is_not_a_core_count(value):
    with pytest.raises(SurgeryError, match=rf"^--threads {value}: give 1 to {available_cores()} "):
        thread_count(value)


@pytest.fixture(scope="module")
def text_recipe(tmp_path_factory) -> Path:
    """A recipe naming a tiny BERT saved to disk (random weights)."""
    pytest.importorskip("transformers")
    config = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32, "vocab_size": 50}
    return write_bert_far_recipe(tmp_path_factory.mktemp("text"), 8, **config)


def test_a_text_encoder_is_not_benched_at_a_batch(text_recipe):
    result = runner.invoke(app, ["bench", str(text_recipe), "--batch", "4"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "--batch: a text encoder is timed on one sequence at a time (every token real); batches are for image models"


def test_a_text_encoder_does_not_export_at_a_batch(text_recipe, tmp_path):
    student = models_from_recipe(load_recipe(text_recipe)).student
    with pytest.raises(SurgeryError, match="traced on one sequence, not a batch of 2"):
        export_onnx(student, (8,), tmp_path / "bert.onnx", batch=2)
