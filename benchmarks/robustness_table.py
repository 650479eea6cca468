"""Markdown from `surgery robustness --json`: the accuracy-on-the-device table, and what hardware-aware finetuning recovers.

    python -m benchmarks.robustness_table benchmarks/robustness_quickstart.json --out benchmarks/robustness_quickstart.md
    python -m benchmarks.robustness_table benchmarks/hwa_quickstart.json --against benchmarks/hwa_baseline.json --out benchmarks/hwa.md

With `--against BASE`, the first file is a run whose finetuning was hardware-aware and BASE the same recipe's run
without it, measured with the same settings and seeds; for each student row and noisy setting it gives the drop of
BASE from its clean top-1 and the share of that drop the hardware-aware run wins back:
(hardware-aware top-1 - BASE top-1) / (BASE clean top-1 - BASE top-1).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from surgery.analyze.robustness import Setting

MODELS = ("teacher", "student", "pruned")


def label(setting: dict) -> str:
    """The setting as `surgery robustness` prints it."""
    return Setting(**setting).label()


def table(report: dict) -> str:
    """One row per setting; per model, top-1 and block fidelity as mean ± std over seeds."""
    models = [m for m in MODELS if m in report]
    head = ["setting", *(f"{m} top-1 (%)" for m in models), *(f"{m} fidelity" for m in models)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for index, setting in enumerate(report["settings"]):
        top1 = [_cell(report[m][index], "top1", "{:.2f}") for m in models]
        fidelity = [_cell(report[m][index], "fidelity", "{:.3f}") for m in models]
        lines.append("| " + " | ".join([label(setting), *top1, *fidelity]) + " |")
    return "\n".join(lines) + "\n"


def recovery(hardware_aware: dict, base: dict) -> str:
    """Per student row and noisy setting: base drop from its clean top-1, the hardware-aware top-1, and the share won back."""
    if hardware_aware["settings"] != base["settings"]:
        raise SystemExit("the two reports were measured with different settings")
    clean = next(i for i, s in enumerate(base["settings"]) if s["ideal"])
    lines = ["| model | setting | clean top-1 | top-1 on the device | drop | hardware-aware top-1 on the device | recovered |", "|---|---|---|---|---|---|---|"]
    for model in (m for m in ("student", "pruned") if m in base and m in hardware_aware):
        reference = base[model][clean]["top1_mean"]
        for index, setting in enumerate(base["settings"]):
            if setting["ideal"]:
                continue
            noisy, aware = base[model][index]["top1_mean"], hardware_aware[model][index]["top1_mean"]
            drop = reference - noisy
            share = f"{100 * (aware - noisy) / drop:.0f} %" if drop > 0 else "no drop"
            row = [model, label(setting), f"{reference:.2f}", _cell(base[model][index], "top1", "{:.2f}"), f"{drop:.2f}", _cell(hardware_aware[model][index], "top1", "{:.2f}"), share]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _cell(summary: dict, metric: str, form: str) -> str:
    if f"{metric}_mean" not in summary:
        return ""
    std = summary[f"{metric}_std"]
    return form.format(summary[f"{metric}_mean"]) + (f" ± {form.format(std)}" if std is not None else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="JSON written by `surgery robustness --json`")
    parser.add_argument("--against", type=Path, help="the same recipe's run without hardware-aware finetuning, same settings")
    parser.add_argument("--out", type=Path, help="write the markdown here as well as to stdout")
    args = parser.parse_args()
    report = json.loads(args.report.read_text())
    text = recovery(report, json.loads(args.against.read_text())) if args.against else table(report)
    print(text, end="")
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
