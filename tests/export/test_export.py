"""ONNX export: native LSTM nodes, parity with PyTorch (also after an uneven shrink), dynamic batch, and `surgery export`."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from typer.testing import CliRunner

from far_modules import MultiHeadBiLSTM
from surgery.cli import app
from surgery.deploy.export import INPUT, Models, check_graph, check_parity, export_onnx, models_from_recipe
from surgery.errors import SurgeryError
from surgery.recipe import recipe_from_data
from surgery.recipe.schema import ExportSpec
from tests.tiny import recipe_data, write_recipe

LSTMS = 2 * 2 * 2  # heads x directions x blocks
runner = CliRunner()


@pytest.fixture(scope="module")
def models() -> Models:
    torch.manual_seed(0)
    return models_from_recipe(recipe_from_data(recipe_data(), []))


@pytest.fixture(scope="module")
def exported(models, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "far.onnx"
    return export_onnx(models.student, models.input_size, path)


def pruned(student: torch.nn.Module) -> torch.nn.Module:
    """Head 0 forward keeps 5 of 16 units, head 1 backward keeps 3, in block 0."""
    small = copy.deepcopy(student)
    module = small.blocks[0].attn.substitute
    assert isinstance(module, MultiHeadBiLSTM)
    keep = {(h, d): torch.ones(16, dtype=torch.bool) for h in range(2) for d in ("forward", "backward")}
    keep[(0, "forward")] = torch.isin(torch.arange(16), torch.tensor([0, 3, 6, 9, 12]))
    keep[(1, "backward")] = torch.isin(torch.arange(16), torch.tensor([1, 7, 12]))
    small.blocks[0].attn.substitute = module.shrink(keep)
    return small.eval()


def hidden_sizes(path: Path) -> list[int]:
    graph = onnx.load(str(path)).graph
    return sorted(a.i for node in graph.node if node.op_type == "LSTM" for a in node.attribute if a.name == "hidden_size")


def test_export_has_one_native_lstm_node_per_head_direction_and_block(exported):
    graph = onnx.load(str(exported.path))
    ops = {node.op_type for node in graph.graph.node}
    assert exported.recurrent_nodes["LSTM"] == LSTMS == sum(node.op_type == "LSTM" for node in graph.graph.node)
    assert not ops & {"Loop", "Scan"}
    assert graph.opset_import[0].version == exported.opset == 17


def test_onnx_runtime_matches_pytorch_to_atol(exported):
    assert exported.max_abs_diff <= 1e-4


@pytest.mark.parametrize("batch", [1, 3])
def test_one_file_takes_any_batch(models, exported, batch):
    session = ort.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    x = torch.randn(batch, *models.input_size)
    got = session.run(None, {INPUT: x.numpy()})[0]
    with torch.no_grad():
        expected = models.student(x).numpy()
    assert got.shape[0] == batch
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_uneven_pruned_student_exports_and_matches(models, tmp_path):
    student = pruned(models.student)
    result = export_onnx(student, models.input_size, tmp_path / "pruned.onnx")
    assert result.recurrent_nodes["LSTM"] == LSTMS and result.max_abs_diff <= 1e-4
    assert hidden_sizes(result.path) == [3, 5] + [16] * (LSTMS - 2)


def test_the_opset_comes_from_the_spec(models, tmp_path):
    result = export_onnx(models.student, models.input_size, tmp_path / "far.onnx", ExportSpec(opset=18, dynamic_batch=False))
    assert onnx.load(str(result.path)).opset_import[0].version == 18
    assert not result.dynamic_batch


def test_a_graph_without_the_expected_lstm_nodes_is_refused(exported):
    with pytest.raises(SurgeryError, match="unrolled"):
        check_graph(onnx.load(str(exported.path)), LSTMS + 1)


def test_a_parity_failure_is_an_error(models, exported):
    changed = copy.deepcopy(models.student)
    with torch.no_grad():
        changed.head.bias += 1e-2
    with pytest.raises(SurgeryError, match="differs from PyTorch"):
        check_parity(changed, exported.path, models.input_size, 1e-4)


def test_an_export_onnx_runtime_cannot_run_is_an_error_not_a_crash(models, exported, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : broadcast")

    monkeypatch.setattr(ort.InferenceSession, "run", refuse)
    with pytest.raises(SurgeryError, match="ONNX Runtime cannot run the export at batch 1: .*broadcast"):
        check_parity(models.student, exported.path, models.input_size, atol=1e-4)


def test_an_existing_file_is_kept_without_force(models, exported):
    with pytest.raises(SurgeryError, match="already exists"):
        export_onnx(models.student, models.input_size, exported.path)


@pytest.fixture
def recipe(tmp_path) -> Path:
    return write_recipe(tmp_path, recipe_data())


def test_cli_writes_the_file_and_reports_it(recipe, tmp_path):
    out = tmp_path / "far.onnx"
    result = runner.invoke(app, ["export", str(recipe), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 0 and f"{LSTMS} LSTM nodes" in result.output


def test_cli_reports_a_gru_students_nodes_as_gru(tmp_path):
    data = recipe_data()
    data["rewrites"][0]["substitute"], data["rewrites"][0]["params"] = "bigru", {}
    out = tmp_path / "far.onnx"
    result = runner.invoke(app, ["export", str(write_recipe(tmp_path, data)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"{LSTMS} GRU nodes" in result.output and "LSTM" not in result.output


def test_cli_refuses_to_overwrite_without_force(recipe, tmp_path):
    out = tmp_path / "far.onnx"
    out.write_bytes(b"old")
    refused = runner.invoke(app, ["export", str(recipe), "--out", str(out)])
    assert refused.exit_code == 2 and "already exists" in refused.output and out.read_bytes() == b"old"
    forced = runner.invoke(app, ["export", str(recipe), "--out", str(out), "--force"])
    assert forced.exit_code == 0 and out.read_bytes() != b"old"


def test_cli_parity_failure_exits_2_and_leaves_the_old_file_whole(recipe, tmp_path):
    out = tmp_path / "far.onnx"
    out.write_bytes(b"old")
    result = runner.invoke(app, ["export", str(recipe), "--out", str(out), "--force", "--set", "export.atol=1e-30"])
    assert result.exit_code == 2 and "export.atol" in result.output
    assert out.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["far.onnx", "tiny.yaml"]
