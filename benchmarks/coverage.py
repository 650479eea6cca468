"""Which timm attention families surgery rewrites end to end: one small model per family, random weights.

For every family in `surgery.coverage.FAMILIES`: sites found against the
attention modules its source defines, rewrite (plan + apply, every site to
`bilstm`), forward, one block-wise distillation step, ONNX export with parity.
Writes a Markdown table and prints the coverage (rewrite + forward + distill).

    python benchmarks/coverage.py                      # table to benchmarks/coverage.md
    python benchmarks/coverage.py --json               # families and coverage as JSON on stdout
    python benchmarks/coverage.py --only swin pvt_v2   # a few families
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from surgery.analyze.coverage import FAMILIES, FamilyResult, check_families, coverage


def markdown(results: list[FamilyResult]) -> str:
    lines = [
        "| family | model | sites | attention modules | adapted as | rewrite | forward | distill | ONNX | reason |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    mark = {True: "yes", False: "no"}
    for r in results:
        cells = [r.family, f"`{r.model}`", str(r.sites), str(r.attention_modules), r.layouts or "–",
                 mark[r.rewrite], mark[r.forward], mark[r.distill], mark[r.onnx], r.reason.replace("|", "\\|")]
        lines.append("| " + " | ".join(cells) + " |")
    ok = sum(r.ok for r in results)
    lines.append(f"\nCoverage: {ok} of {len(results)} families ({coverage(results):.0%}) rewrite, run and distill.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", help="family names to check (default: all)")
    parser.add_argument("--json", action="store_true", help="print families and coverage as JSON")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/coverage.md"))
    args = parser.parse_args()
    families = tuple(f for f in FAMILIES if not args.only or f.family in args.only)
    unknown = set(args.only or ()) - {f.family for f in families}
    if unknown:
        parser.error(f"unknown families {sorted(unknown)}; known: {', '.join(f.family for f in FAMILIES)}")

    def progress(result: FamilyResult) -> None:
        status = "ok" if result.ok else f"FAILED {result.reason}"
        print(f"{result.family:<18} {result.model:<32} {result.seconds:5.1f}s {status}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # timm and the exporter warn about tracing; the result says what failed
        results = list(check_families(families, progress))
    if args.json:
        print(json.dumps({"families": [r.to_json() for r in results], "coverage": coverage(results)}, indent=2))
        return
    table = markdown(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
