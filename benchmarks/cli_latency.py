"""How long each `surgery` command takes as a whole process, beside the floor of importing torch and timm.

Every command runs `--repeats` times (default 5), the commands interleaved round by round so
drift on a shared machine touches them alike; each row gives the median and min–max wall time,
the median less the floor F (`python -c "import torch, timm"`, measured in the same run), the
median of each round's own difference from that round's floor (steadier where the machine's
speed drifts between rounds), and the peak resident memory of the process (its own `ru_maxrss`,
from `os.wait4`).

    python benchmarks/cli_latency.py --repeats 5 --out benchmarks/cli_latency.md
    python benchmarks/cli_latency.py --repeats 9 --only validate    # one command beside the floor
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

FLOOR = "import torch, timm"
COMMANDS: dict[str, list[str]] = {
    "floor F: import torch, timm": [sys.executable, "-c", FLOOR],
    "surgery --help": ["surgery", "--help"],
    "surgery schema": ["surgery", "schema"],
    "surgery validate recipes/deit_far.yaml": ["surgery", "validate", "recipes/deit_far.yaml"],
    "surgery plan (DeiT-Tiny, meta)": ["surgery", "plan", "recipes/deit_far.yaml", "--device", "meta"],
    "surgery plan (DeiT-Base, meta)": ["surgery", "plan", "recipes/deit_far.yaml", "--device", "meta", "--set", "model.name=deit_base_patch16_224"],
    "surgery plan (ViT-giant DINOv2, 1.1 B, meta)": [
        "surgery", "plan", "recipes/deit_far.yaml", "--device", "meta", "--set", "model.name=vit_giant_patch14_dinov2",
    ],
    "surgery cost deit_tiny_patch16_224": ["surgery", "cost", "deit_tiny_patch16_224"],
    "surgery inspect swin_tiny_patch4_window7_224": ["surgery", "inspect", "swin_tiny_patch4_window7_224"],
}


def run_once(command: list[str]) -> tuple[float, int]:
    """(wall seconds, peak RSS in bytes) of one run; a failing command stops the benchmark with its output."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    error = process.stderr.read().decode() if process.stderr else ""
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{shlex.join(command)} exited {process.returncode}:\n{error}")
    return seconds, usage.ru_maxrss * 1024  # Linux reports kilobytes


def measure(commands: dict[str, list[str]], repeats: int) -> dict[str, list[tuple[float, int]]]:
    results: dict[str, list[tuple[float, int]]] = {name: [] for name in commands}
    for round_ in range(repeats):
        for name, command in commands.items():
            results[name].append(run_once(command))
            print(f"round {round_ + 1}/{repeats}: {name} {results[name][-1][0]:.2f} s", file=sys.stderr)
    return results


def markdown(results: dict[str, list[tuple[float, int]]], repeats: int) -> str:
    from surgery.deploy.machine import machine  # after measuring: a child's peak RSS counts its parent's from before exec

    where = machine()
    floors = [seconds for seconds, _ in results[next(iter(results))]]
    floor = statistics.median(floors)
    lines = [
        f"{where['cpu']}, {where['isa']}, {os.cpu_count()} cores; Python {sys.version.split()[0]}; "
        f"median and min–max of {repeats} runs, interleaved; F = {floor:.2f} s",
        "",
        "| command | median (s) | min–max (s) | median − F (s) | median of (run − its round's F) (s) | peak RSS (MB) |",
        "|---|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        seconds = [s for s, _ in runs]
        median = statistics.median(seconds)
        paired = statistics.median(s - f for s, f in zip(seconds, floors))
        peak = max(rss for _, rss in runs) / 2**20
        lines.append(f"| `{name}` | {median:.2f} | {min(seconds):.2f}–{max(seconds):.2f} | {median - floor:+.2f} | {paired:+.2f} | {peak:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, help="Also write the Markdown table here.")
    parser.add_argument("--only", metavar="TEXT", help="Measure only the commands whose name contains TEXT (and the floor).")
    args = parser.parse_args()
    floor, *rest = COMMANDS.items()
    chosen = dict([floor, *((name, command) for name, command in rest if args.only is None or args.only in name)])
    if len(chosen) == 1:
        parser.error(f"--only {args.only!r} matches no command; names: {', '.join(name for name, _ in rest)}")
    table = markdown(measure(chosen, args.repeats), args.repeats)
    print(table)
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
