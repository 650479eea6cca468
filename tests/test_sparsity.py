"""Attention sparsity: the row measures on known rows, and their capture from fused and explicit attention."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

from surgery.detect.sites import find_sites
from surgery.detect.sparsity import attention_sparsity, row_metrics


def test_uniform_rows_are_dense_and_one_hot_rows_are_sparse():
    uniform = torch.full((1, 1, 3, 8), 1 / 8)
    one_hot = torch.eye(8)[:3].view(1, 1, 3, 8)
    entropy, top_mass, hoyer = (m.mean().item() for m in row_metrics(uniform, top_fraction=0.25))
    assert (entropy, top_mass, hoyer) == pytest.approx((1.0, 0.25, 0.0), abs=1e-6)
    entropy, top_mass, hoyer = (m.mean().item() for m in row_metrics(one_hot, top_fraction=0.25))
    assert (entropy, top_mass, hoyer) == pytest.approx((0.0, 1.0, 1.0), abs=1e-6)


class Peaked(nn.Module):
    """Attention whose scores are a scaled identity, so `sharpness` sets how peaked its rows are."""

    def __init__(self, sharpness: float, fused: bool) -> None:
        super().__init__()
        self.sharpness, self.fused = sharpness, fused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = x.unsqueeze(1) * self.sharpness  # (B, 1, N, C)
        k = torch.eye(x.shape[1], x.shape[2]).expand_as(q)
        if self.fused:
            return torch.nn.functional.scaled_dot_product_attention(q, k, k, scale=1.0).squeeze(1)
        return ((q @ k.transpose(-2, -1)).softmax(-1) @ k).squeeze(1)


class Both(nn.Module):
    """Two attentions reading the same input."""

    def __init__(self, fused: bool) -> None:
        super().__init__()
        self.soft, self.sharp = Peaked(0.1, fused), Peaked(50.0, fused)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.soft(x) + self.sharp(x)


@pytest.mark.parametrize("fused", [True, False])
def test_sharper_attention_measures_sparser_whether_fused_or_explicit(fused):
    model = Both(fused)
    x = torch.eye(6).unsqueeze(0).repeat(2, 1, 1)
    soft, sharp = attention_sparsity(model, ["soft", "sharp"], [x])
    assert soft.rows == sharp.rows == 12
    assert sharp.mean("entropy") < 0.1 < 0.9 < soft.mean("entropy")
    assert sharp.mean("hoyer") > soft.mean("hoyer")


def test_every_site_of_a_vit_reports_one_value_per_head():
    model = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, num_heads=3)
    x = torch.randn(2, 3, 32, 32)
    sites = [site.path for site in find_sites(model, x)]
    results = attention_sparsity(model, sites, [x, x])
    assert [r.path for r in results] == sites
    for result in results:
        assert result.rows == 2 * 2 * 17  # batches x images x query tokens
        assert all(len(values) == 3 for values in result.heads.values())
        assert 0 <= result.mean("entropy") <= 1 and 0 <= result.mean("hoyer") <= 1


def test_a_site_without_attention_rows_is_reported():
    with pytest.raises(ValueError, match="no attention rows"):
        attention_sparsity(nn.Sequential(nn.Linear(4, 4)), ["0"], [torch.randn(2, 4)])


@pytest.mark.slow
def test_analyze_reads_a_runs_teacher_on_its_validation_data(finished_run, tmp_path):
    import json

    from typer.testing import CliRunner

    from surgery.cli import app

    plot = tmp_path / "sparsity.png"
    args = ["analyze", str(finished_run.run.root), "--batches", "1", "--batch-size", "16", "--plot", str(plot), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["weights"].startswith("the trained teacher")
    assert [site["path"] for site in report["sites"]] == ["blocks.0.attn", "blocks.1.attn"]
    assert all(site["rows"] == 16 * 17 and len(site["per_head"]["entropy"]) == 2 for site in report["sites"])
    assert plot.stat().st_size > 0 and "maps" not in report
