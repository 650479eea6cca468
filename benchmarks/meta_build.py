"""Building a timm model on the meta device: timm's own build against `surgery.build_model`, which skips the initialisers.

On meta every initialiser still runs its Python meta kernel and computes nothing;
`surgery.models` returns the tensor for in-place fills instead. Median of
`--repeats` builds per model, after one warm-up build of each.

    python benchmarks/meta_build.py --repeats 7
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import timm
import torch
from torch import nn

from surgery import build_model
from surgery.deploy.machine import machine

MODELS = ("deit_tiny_patch16_224", "deit_base_patch16_224", "swin_tiny_patch4_window7_224", "vit_giant_patch14_dinov2")


def median_seconds(build: Callable[[], nn.Module], repeats: int) -> float:
    build()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        build()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def timm_meta(name: str) -> nn.Module:
    with torch.device("meta"):
        return timm.create_model(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    where = machine()
    print(f"{where['cpu']}, {where['isa']}; median of {args.repeats} builds\n")
    print("| model | timm on meta (s) | surgery.build_model on meta (s) |")
    print("|---|---|---|")
    for name in MODELS:
        plain = median_seconds(lambda: timm_meta(name), args.repeats)
        skipping = median_seconds(lambda: build_model(name, device="meta"), args.repeats)
        print(f"| `{name}` | {plain:.3f} | {skipping:.3f} |")


if __name__ == "__main__":
    main()
