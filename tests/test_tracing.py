"""Tracing and the shaped graphs one command shares: the same graph fx would make, made once per model and input."""

from __future__ import annotations

import timm
import torch
from torch import fx, nn

from surgery.graph.shaped import ShapedGraphs
from surgery.graph.tracing import MACS, TimmTracer, shape_of, trace

LAYER_SCALED = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 3, "num_heads": 2, "init_values": 1e-5}
"""A ViT whose blocks read parameters in their forward (layer scales), beside its class token and position table."""


class _FxParameterLookup(TimmTracer):
    """TimmTracer with torch.fx's own parameter-name search, as the reference."""

    def getattr(self, attr: str, attr_val: object, parameter_proxy_cache: dict[str, fx.Proxy]) -> object:
        return fx.Tracer.getattr(self, attr, attr_val, parameter_proxy_cache)


def test_parameter_reads_trace_as_fx_traces_them() -> None:
    model = timm.create_model("vit_tiny_patch16_224", **LAYER_SCALED)
    ours, reference = (fx.GraphModule(model, tracer.trace(model)) for tracer in (TimmTracer(), _FxParameterLookup()))
    reads = [node.target for node in ours.graph.nodes if node.op == "get_attr"]
    assert "blocks.2.ls2.gamma" in reads and "cls_token" in reads
    assert ours.code == reference.code


def test_a_shared_parameter_is_read_under_its_first_name() -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first, self.second = nn.Linear(4, 4), nn.Linear(4, 4)
            self.second.weight = self.first.weight

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x @ self.second.weight

    reads = [node.target for node in trace(Tied()).graph.nodes if node.op == "get_attr"]
    assert reads == ["first.weight"]


def test_a_graph_is_made_once_per_model_leaves_and_input_shape() -> None:
    model = timm.create_model("vit_tiny_patch16_224", **LAYER_SCALED)
    graphs, sites = ShapedGraphs(), ["blocks.0.attn", "blocks.1.attn", "blocks.2.attn"]
    graph = graphs.of(model, sites, torch.zeros(1, 3, 32, 32))
    assert graphs.of(model, list(reversed(sites)), torch.ones(1, 3, 32, 32)) is graph
    assert graphs.of(model, sites, torch.zeros(2, 3, 32, 32)) is not graph
    assert graphs.of(model, sites[:1], torch.zeros(1, 3, 32, 32)) is not graph
    calls = {node.target: node for node in graph.graph.nodes if node.op == "call_module"}
    assert set(sites) <= set(calls) and "blocks.0.attn.qkv" not in calls
    assert shape_of(calls["blocks.2.attn"]) == (1, 17, 32)
    assert calls["blocks.2.attn"].meta[MACS] > 0


def test_graphs_are_made_in_eval_mode_and_each_module_keeps_its_own_mode() -> None:
    model = timm.create_model("vit_tiny_patch16_224", **LAYER_SCALED).train()
    model.blocks[1].eval()
    ShapedGraphs().of(model, [], torch.zeros(1, 3, 32, 32))
    assert model.training and model.blocks[0].training and not model.blocks[1].training


def test_an_untraceable_model_has_no_graph() -> None:
    class Branchy(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x if x.sum() > 0 else -x

    assert ShapedGraphs().of(Branchy(), [], torch.zeros(1, 3)) is None
