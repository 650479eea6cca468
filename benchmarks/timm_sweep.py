"""Every timm model planned with a select-everything `bilstm` recipe on the meta device: planned, refused or crashed.

Each name `timm.list_models()` returns is built without weights, planned
(trace, detect, select, adapt, rewrite, shape check) and counted before and
after. `planned` gives sites, params and MACs; `refused` the one-line reason
(family, site and cause); `crashed` the exception type, its message and the
innermost frame inside this project, which is a bug to fix. One process;
a model over `--timeout` seconds is reported as `timeout`, not waited for.

    python benchmarks/timm_sweep.py                        # all models, table to benchmarks/timm_sweep.md
    python benchmarks/timm_sweep.py --only "vit_*" --json  # a glob, JSON on stdout
    python benchmarks/timm_sweep.py --shard 1/4            # every fourth model, from the first
    python benchmarks/timm_sweep.py --merge a.json b.json  # the table from --json outputs (shards; a later rerun wins)
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import timm

from surgery.errors import SurgeryError
from surgery.measure.counting import count
from surgery.recipe import recipe_from_data
from surgery.rewrite.student import plan_and_build

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tuple(str(ROOT / package) for package in ("surgery", "far_modules", "hwmodel"))


@dataclass
class Outcome:
    model: str
    status: str
    """planned, refused, crashed or timeout."""
    sites: int = 0
    reason: str = ""
    seconds: float = 0.0
    params: tuple[int, int] | None = None
    """Before and after the surgery."""
    macs: tuple[int, int] | None = None


class _Timeout(Exception):
    pass


def sweep_one(name: str, timeout: int) -> Outcome:
    """Plan one model under an alarm; every exception becomes an outcome."""
    started = time.perf_counter()
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    try:
        outcome = _plan(name)
    except _Timeout:
        outcome = Outcome(name, "timeout", reason=f"over {timeout} s")
    except SurgeryError as error:
        outcome = Outcome(name, "refused", reason=" ".join(str(error).split()))
    except Exception as error:  # a crash is what this sweep exists to find
        outcome = Outcome(name, "crashed", reason=f"{type(error).__name__}: {' '.join(str(error).split())[:300]} at {_project_frame(error)}")
    finally:
        signal.alarm(0)
    outcome.seconds = round(time.perf_counter() - started, 2)
    return outcome


def _plan(name: str) -> Outcome:
    recipe = recipe_from_data({"name": "sweep", "model": {"name": name}, "rewrites": [{"substitute": "bilstm"}]})
    plan, teacher, student = plan_and_build(recipe, "meta")
    before, after = count(teacher, plan.input_size), count(student, plan.input_size)
    reason = "; ".join(skip.reason for skip in plan.skipped)
    return Outcome(name, "planned", len(plan.steps), reason, params=(before.params, after.params), macs=(before.macs, after.macs))


def _alarm(signum: int, frame: object) -> None:
    raise _Timeout


def _project_frame(error: BaseException) -> str:
    """The innermost traceback frame in surgery, far_modules or hwmodel (else the innermost of all)."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [frame for frame in frames if frame.filename.startswith(PROJECT)] or frames
    if not ours:
        return "?"
    frame = ours[-1]
    return f"{frame.filename.removeprefix(f'{ROOT}/')}:{frame.lineno}"


def markdown(outcomes: list[Outcome], wall: float) -> str:
    counts = Counter(o.status for o in outcomes)
    lines = [
        f"{len(outcomes)} timm models, {', '.join(f'{counts[s]} {s}' for s in ('planned', 'refused', 'crashed', 'timeout'))}; {wall:.0f} s in all.",
        "",
        "Refusal reasons, grouped (site paths and shapes blanked):",
        "",
        "| models | reason |",
        "|---|---|",
    ]
    lines += [f"| {n} | {reason} |" for reason, n in _grouped(o for o in outcomes if o.status != "planned").most_common()]
    lines += ["", "| model | status | sites | params M | MACs G | s | reason |", "|---|---|---|---|---|---|---|"]
    for o in outcomes:
        params = f"{o.params[0] / 1e6:.1f}→{o.params[1] / 1e6:.1f}" if o.params else ""
        macs = f"{o.macs[0] / 1e9:.2f}→{o.macs[1] / 1e9:.2f}" if o.macs else ""
        lines.append(f"| `{o.model}` | {o.status} | {o.sites} | {params} | {macs} | {o.seconds:.1f} | {o.reason.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def _grouped(outcomes: Iterable[Outcome]) -> Counter[str]:
    return Counter(f"{o.status}: " + re.sub(r"\(\d[\d, ]*\)|\b[\w.]+\.\d+\.[\w.]+|\d+", "…", o.reason)[:160] for o in outcomes)


def merged(paths: list[Path]) -> tuple[list[Outcome], float]:
    """Outcomes of several `--json` outputs in timm's order, a later file's outcome replacing an earlier one's; wall times summed."""
    by_model: dict[str, Outcome] = {}
    wall = 0.0
    for path in paths:
        data = json.loads(path.read_text())
        wall += data["wall_s"]
        for row in data["models"]:
            row = {**row, "params": tuple(row["params"]) if row["params"] else None, "macs": tuple(row["macs"]) if row["macs"] else None}
            by_model[row["model"]] = Outcome(**row)
    order = {name: index for index, name in enumerate(timm.list_models())}
    return sorted(by_model.values(), key=lambda o: order.get(o.model, len(order))), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=["*"], help="fnmatch globs on model names (timm.list_models' filter).")
    parser.add_argument("--shard", default="1/1", help="I/N: every N-th model starting at the I-th (1-based).")
    parser.add_argument("--timeout", type=int, default=60, help="Seconds before a model is reported as timeout.")
    parser.add_argument("--json", action="store_true", help="Print JSON instead of writing the Markdown table.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "timm_sweep.md")
    parser.add_argument("--merge", type=Path, nargs="+", help="Write the table from these --json outputs instead of sweeping.")
    args = parser.parse_args()
    if args.merge:
        outcomes, wall = merged(args.merge)
        args.out.write_text(markdown(outcomes, wall))
        print(f"{Counter(o.status for o in outcomes)} from {len(args.merge)} files; table in {args.out}", file=sys.stderr)
        return
    index, shards = (int(part) for part in args.shard.split("/"))
    names = timm.list_models(args.only)[index - 1 :: shards]
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    outcomes = []
    for name in names:
        outcomes.append(sweep_one(name, args.timeout))
        print(f"{outcomes[-1].status:8} {outcomes[-1].seconds:6.1f}s {name} {outcomes[-1].reason[:120]}", file=sys.stderr, flush=True)
    wall = time.perf_counter() - started
    counts = {status: sum(o.status == status for o in outcomes) for status in ("planned", "refused", "crashed", "timeout")}
    if args.json:
        print(json.dumps({"models": [asdict(o) for o in outcomes], "counts": counts, "wall_s": wall}, indent=2))
        return
    args.out.write_text(markdown(outcomes, wall))
    print(f"{counts} in {wall:.0f} s; table in {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
