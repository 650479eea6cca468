"""How should one FAR substitute be laid out for ONNX Runtime? Times one block's substitute in each layout.

Layouts, numerically identical (checked before timing):
- `per_direction`: the library's layout, one unidirectional `nn.LSTM` per head and direction
  (2H ONNX `LSTM` nodes, the backward ones between two `Flip`s, i.e. Slice ops);
- `bidirectional`: one `nn.LSTM(bidirectional=True)` per head (H nodes, no flips); it needs equal
  forward and backward hidden sizes, so it fits unpruned or symmetrically pruned students;
and the attention it replaces, for reference. Protocol of `surgery bench` (appendix A.4): ONNX
Runtime, one thread, arena off, batch 1, warm-up then the median of timed runs, alternated.

    python benchmarks/lstm_layouts.py --dim 192 --heads 3 --tokens 197 577
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch
from timm.layers import Attention
from torch import nn

from far_modules import MultiHeadBiLSTM, SiteSpec
from surgery.bench import _one_thread, ort_session, time_alternating
from surgery.export import export_onnx
from surgery.recipe.schema import ExportSpec


class BidirectionalPerHead(nn.Module):
    """The same function as `MultiHeadBiLSTM` with each head's two directions in one `nn.LSTM`."""

    def __init__(self, source: MultiHeadBiLSTM) -> None:
        super().__init__()
        self.norm, self.in_proj, self.out_proj, self.head_dim = source.norm, source.in_proj, source.out_proj, source.head_dim
        self.lstms = nn.ModuleList(_merge(f, b) for f, b in zip(source.forward_lstms, source.backward_lstms))

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


def _merge(forward: nn.LSTM, backward: nn.LSTM) -> nn.LSTM:
    merged = nn.LSTM(forward.input_size, forward.hidden_size, batch_first=True, bidirectional=True)
    state = {**forward.state_dict(), **{f"{k}_reverse": v for k, v in backward.state_dict().items()}}
    merged.load_state_dict(state)
    return merged


def layouts(dim: int, heads: int) -> dict[str, nn.Module]:
    torch.manual_seed(0)
    far = MultiHeadBiLSTM.from_site(SiteSpec(dim, heads, dim // heads)).eval()
    return {"attention": TokensOnly(Attention(dim, heads, qkv_bias=True)).eval(), "per_direction": far, "bidirectional": BidirectionalPerHead(far).eval()}


def measure(models: dict[str, nn.Module], tokens: int, dim: int, runs: int, warmup: int, workdir: Path) -> dict[str, float]:
    x = torch.randn(1, tokens, dim)
    with torch.no_grad():
        assert torch.allclose(models["per_direction"](x), models["bidirectional"](x), atol=1e-5), "layouts differ"
    runners = {}
    for name, model in models.items():
        path = workdir / f"{name}-{tokens}.onnx"
        export_onnx(model, (tokens, dim), path, ExportSpec(dynamic_batch=False), force=True)
        session, feed = ort_session(path), {"image": x.numpy()}
        runners[name] = lambda session=session, feed=feed: session.run(None, feed)
    with _one_thread(pin=True):
        times = time_alternating(runners, runs, warmup)
    return {name: statistics.median(t) * 1e3 for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=192)
    parser.add_argument("--heads", type=int, default=3)
    parser.add_argument("--tokens", type=int, nargs="+", default=[197, 577])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args()
    models = layouts(args.dim, args.heads)
    print(f"| tokens | {' | '.join(f'{name} (ms)' for name in models)} | bidirectional / per_direction |")
    print(f"|---|{'---|' * len(models)}---|")
    with tempfile.TemporaryDirectory() as workdir:
        for tokens in args.tokens:
            ms = measure(models, tokens, args.dim, args.runs, args.warmup, Path(workdir))
            cells = " | ".join(f"{ms[name]:.3f}" for name in models)
            print(f"| {tokens} | {cells} | ×{ms['bidirectional'] / ms['per_direction']:.2f} |")


if __name__ == "__main__":
    main()
