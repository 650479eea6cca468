"""How should one FAR substitute be laid out for ONNX Runtime? Times one block's substitute in each layout.

Layouts, numerically identical (checked before timing):
- `per_direction`: the library's layout, one unidirectional `nn.LSTM` per head and direction
  (2H ONNX `LSTM` nodes, the backward ones between two `Flip`s, i.e. Slice ops);
- `bidirectional`: one `nn.LSTM(bidirectional=True)` per head (H nodes, no flips); it needs equal
  forward and backward hidden sizes, so it fits unpruned or symmetrically pruned students;
- `folded`: `in_proj` folded into every LSTM's input weights (W_ih·W_in, W_ih·b_in + b_ih), so no
  projection MatMul and no Split, and the input flipped once for all backward LSTMs;
and the attention it replaces, for reference. `--profile` splits the library layout's time by ONNX op. Protocol of `surgery bench` (appendix A.4): ONNX
Runtime, one thread, arena off, batch 1, warm-up then the median of timed runs, alternated.

    python benchmarks/lstm_layouts.py --dim 192 --heads 3 --tokens 197 577
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from timm.layers import Attention
from torch import nn

from far_modules import MultiHeadBiLSTM, SiteSpec
from surgery.deploy.bench import _one_thread, ort_session, time_alternating
from surgery.deploy.export import export_onnx
from surgery.recipe.schema import ExportSpec


class BidirectionalPerHead(nn.Module):
    """The same function as `MultiHeadBiLSTM` with each head's two directions in one `nn.LSTM`."""

    def __init__(self, source: MultiHeadBiLSTM) -> None:
        super().__init__()
        self.norm, self.in_proj, self.out_proj, self.head_dim = source.norm, source.in_proj, source.out_proj, source.head_dim
        self.lstms = nn.ModuleList(_merge(f, b) for f, b in zip(source.forward_rnns, source.backward_rnns))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        heads = self.in_proj(self.norm(x)).split(self.head_dim, dim=-1)  # H x (B, N, d)
        return self.out_proj(torch.cat([self.lstms[h](heads[h])[0] for h in range(len(self.lstms))], dim=-1))


class TokensOnly(nn.Module):
    """Calls a timm attention with its token input alone (the exporter would trace its other defaults as inputs)."""

    def __init__(self, attention: nn.Module) -> None:
        super().__init__()
        self.attention = attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(x)


class FoldedInProjection(nn.Module):
    """The same function as `MultiHeadBiLSTM` with `in_proj` folded into each LSTM's input weights."""

    def __init__(self, source: MultiHeadBiLSTM) -> None:
        super().__init__()
        self.norm, self.out_proj = source.norm, source.out_proj
        d, weight, bias = source.head_dim, source.in_proj.weight, source.in_proj.bias
        rows = [(weight[h * d : (h + 1) * d], bias[h * d : (h + 1) * d]) for h in range(source.num_heads)]
        self.forward_rnns = nn.ModuleList(_fold(lstm, *rows[h]) for h, lstm in enumerate(source.forward_rnns))
        self.backward_rnns = nn.ModuleList(_fold(lstm, *rows[h]) for h, lstm in enumerate(source.backward_rnns))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        reversed_x = x.flip(1)
        outputs = []
        for forward, backward in zip(self.forward_rnns, self.backward_rnns):
            outputs += [forward(x)[0], backward(reversed_x)[0].flip(1)]
        return self.out_proj(torch.cat(outputs, dim=-1))


@torch.no_grad()
def _fold(lstm: nn.LSTM, weight: torch.Tensor, bias: torch.Tensor) -> nn.LSTM:
    """An LSTM reading the un-projected tokens: W_ih (W x + b) + b_ih = (W_ih W) x + (W_ih b + b_ih)."""
    folded = nn.LSTM(weight.shape[1], lstm.hidden_size, batch_first=True)
    folded.weight_ih_l0.copy_(lstm.weight_ih_l0 @ weight)
    folded.bias_ih_l0.copy_(lstm.weight_ih_l0 @ bias + lstm.bias_ih_l0)
    folded.weight_hh_l0.copy_(lstm.weight_hh_l0)
    folded.bias_hh_l0.copy_(lstm.bias_hh_l0)
    return folded


def _merge(forward: nn.LSTM, backward: nn.LSTM) -> nn.LSTM:
    merged = nn.LSTM(forward.input_size, forward.hidden_size, batch_first=True, bidirectional=True)
    state = {**forward.state_dict(), **{f"{k}_reverse": v for k, v in backward.state_dict().items()}}
    merged.load_state_dict(state)
    return merged


LIBRARY = "per_direction"


def layouts(dim: int, heads: int) -> dict[str, nn.Module]:
    torch.manual_seed(0)
    far = MultiHeadBiLSTM.from_site(SiteSpec(dim, heads, dim // heads)).eval()
    return {
        "attention": TokensOnly(Attention(dim, heads, qkv_bias=True)).eval(),
        "per_direction": far,
        "bidirectional": BidirectionalPerHead(far).eval(),
        "folded": FoldedInProjection(far).eval(),
    }


def measure(models: dict[str, nn.Module], tokens: int, dim: int, runs: int, warmup: int, workdir: Path) -> dict[str, float]:
    """Median ms of each layout, alternated; the layouts are first checked to compute the same function."""
    x = torch.randn(1, tokens, dim)
    with torch.no_grad():
        reference = models[LIBRARY](x)
        for name in ("bidirectional", "folded"):
            assert torch.allclose(reference, models[name](x), atol=1e-5), f"{name} differs from {LIBRARY}"
    runners = {}
    for name, model in models.items():
        session = ort_session(export(model, x, workdir / f"{name}-{tokens}.onnx"))
        runners[name] = lambda session=session, feed={"image": x.numpy()}: session.run(None, feed)
    with _one_thread(pin=True):
        times = time_alternating(runners, runs, warmup)
    return {name: statistics.median(t) * 1e3 for name, t in times.items()}


def profile(model: nn.Module, tokens: int, dim: int, runs: int, warmup: int, workdir: Path) -> dict[str, float]:
    """Mean ms per run spent in each ONNX op type (ONNX Runtime's profiler), warm-up runs left out."""
    x = torch.randn(1, tokens, dim)
    options = ort_session(export(model, x, workdir / f"profile-{tokens}.onnx")).get_session_options()
    options.enable_profiling, options.profile_file_prefix = True, str(workdir / "profile")
    session = ort.InferenceSession(str(workdir / f"profile-{tokens}.onnx"), options, providers=["CPUExecutionProvider"])
    with _one_thread(pin=True):
        for _ in range(warmup + runs):
            session.run(None, {"image": x.numpy()})
    events = json.loads(Path(session.end_profiling()).read_text())
    starts = sorted(e["ts"] for e in events if e.get("name") == "model_run")
    per_op: dict[str, float] = defaultdict(float)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time") and event["ts"] >= starts[warmup]:
            per_op[event["args"]["op_name"]] += event["dur"] / runs / 1e3
    return dict(sorted(per_op.items(), key=lambda item: -item[1]))


def cache_bandwidth(small_kib: int = 256, large_kib: int = 512, repeats: int = 5000) -> float:
    """Marginal read bandwidth (bytes/s) of matrix-vector products on matrices that fit L2 but not L1.

    The difference between two sizes cancels the per-call overhead; this is the
    rate at which a recurrent step can stream a W_hh that does not fit L1.
    """
    seconds = []
    for kib in (small_kib, large_kib):
        weight, vector = np.random.rand(kib * 256 // 64, 64).astype(np.float32), np.ones(64, np.float32)
        out = np.empty(weight.shape[0], np.float32)
        with _one_thread(pin=True):
            for _ in range(repeats // 10):
                np.dot(weight, vector, out=out)
            start = time.perf_counter()
            for _ in range(repeats):
                np.dot(weight, vector, out=out)
        seconds.append((time.perf_counter() - start) / repeats)
    return (large_kib - small_kib) * 1024 / (seconds[1] - seconds[0])


def export(model: nn.Module, x: torch.Tensor, path: Path) -> Path:
    return export_onnx(model, tuple(x.shape[1:]), path, ExportSpec(dynamic_batch=False), force=True).path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=192)
    parser.add_argument("--heads", type=int, default=3)
    parser.add_argument("--tokens", type=int, nargs="+", default=[197, 577])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--profile", action="store_true", help=f"also split {LIBRARY}'s time by ONNX op")
    args = parser.parse_args()
    models = layouts(args.dim, args.heads)
    others = [name for name in models if name not in ("attention", LIBRARY)]
    print(f"| tokens | {' | '.join(f'{name} (ms)' for name in models)} | {' | '.join(f'{name} / {LIBRARY}' for name in others)} |")
    print(f"|---|{'---|' * (len(models) + len(others))}")
    with tempfile.TemporaryDirectory() as workdir:
        for tokens in args.tokens:
            ms = measure(models, tokens, args.dim, args.runs, args.warmup, Path(workdir))
            cells = [f"{ms[name]:.3f}" for name in models] + [f"×{ms[name] / ms[LIBRARY]:.2f}" for name in others]
            print(f"| {tokens} | {' | '.join(cells)} |")
        for tokens in args.tokens if args.profile else ():
            split = profile(models[LIBRARY], tokens, args.dim, args.runs, args.warmup, Path(workdir))
            steps = 2 * args.heads * tokens
            print(f"\n{LIBRARY}, {tokens} tokens, ms per run by op (LSTM: {split.get('LSTM', 0.0) * 1e3 / steps:.2f} µs per recurrent step):")
            print(", ".join(f"{op} {value:.3f}" for op, value in split.items()))
        if args.profile:
            bandwidth, w_hh = cache_bandwidth(), 4 * (args.dim // args.heads) ** 2 * 4
            print(f"\nL2 read bandwidth (numpy matrix-vector, 256 vs 512 KiB): {bandwidth / 1e9:.0f} GB/s, "
                  f"so streaming one W_hh ({w_hh // 1024} KiB) takes {w_hh / bandwidth * 1e6:.2f} µs per step")


if __name__ == "__main__":
    main()
