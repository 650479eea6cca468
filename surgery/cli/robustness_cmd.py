"""`surgery robustness RUN_OR_RECIPE`: top-1 of a run's models on a noisy crossbar device, mean ± std over seeds."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich import box
from rich.table import Table

from surgery.cli.common import JsonOption, SetOption, handles_errors, print_json, stderr, stdout
from surgery.errors import SurgeryError

if TYPE_CHECKING:
    from surgery.analyze.robustness import Progress, Robustness, Setting
    from surgery.runs import RunDir
    from surgery.targets import Target


@handles_errors
def robustness(
    target: Annotated[str, typer.Argument(metavar="RUN_OR_RECIPE", help="A finished run directory, or a recipe whose run is at runs/<name>.")],
    overrides: SetOption = [],
    sigma: Annotated[
        str,
        typer.Option(
            "--sigma",
            help="Programming σ in percent, comma-separated: the relative standard deviation of each cell's conductance "
            "after programming (2 = 2 % of its programmed level), drawn once per seed; read at once, no drift. 0 still quantises (fixed point, ADC); the first row, the ideal device, does not.",
        ),
    ] = "0,1,2,5,10",
    drift_time: Annotated[
        str | None,
        typer.Option(
            "--drift-time",
            help="Times from programming to reading, comma-separated, with units s, min, h, d, y (1s,1h,1d,1y); each at "
            "the device's own σ. Reads before the device's drift t0 (1 s by default) see no drift.",
        ),
    ] = None,
    drift_nu: Annotated[
        float | None,
        typer.Option("--drift-nu", min=0, max=1, help="Drift exponent for --drift-time, G(t) = G(t0)(t/t0)^-nu (default: the device's; ReRAM's is 0)."),
    ] = None,
    policy: Annotated[
        Literal["write", "digital", "both"] | None,
        typer.Option("--policy", help="Activation × activation products written into crossbars, exact on digital units, or both (default: the recipe's)."),
    ] = None,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Monte-Carlo seeds per setting: one programming and one read-noise stream each.")] = 10,
    images: Annotated[
        int | None, typer.Option("--images", min=1, help="Measure on the first N validation images only (a quick look: every product is simulated read by read).")
    ] = None,
    models: Annotated[
        str | None, typer.Option("--models", help="Measure only these, comma-separated: teacher, student, pruned (default: every one the run has).")
    ] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a PNG of top-1 against σ and against time here.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Run the teacher, the student and the pruned student (each report row's model) through the recipe's `hardware`
    device with programming noise and drift: top-1, and block fidelity (cosine of each replaced block's output to the
    clean teacher's). The first row is the ideal device (the clean models). A recipe names its run at runs/<name>, and
    its hardware section (with --set) is the device."""
    from surgery.analyze.robustness import measure_robustness, model_names, parse_duration, sweep
    from surgery.analyze.robustness_plot import plot_robustness
    from surgery.recipe.hardware import resolve_hardware
    from surgery.targets import resolve_target

    sigmas, times = _sigmas(sigma), [parse_duration(text) for text in _items(drift_time)] if drift_time is not None else []
    only = model_names(_items(models)) if models is not None else None
    resolved = resolve_target(target, overrides, accepts=("run", "recipe"))
    device = resolve_hardware(resolved.recipe)[0]
    policies = ("write", "digital") if policy == "both" else (policy or resolved.recipe.hardware.policy,)
    settings = sweep(device, policies, sigmas, times, drift_nu)
    result = measure_robustness(_run_of(resolved), device, settings, seeds, images=images, only=only, progress=_progress(seeds))
    for name, why in result.missing.items():
        stderr.print(f"no {name}: {why}", style="yellow", highlight=False)
    if plot is not None:
        stderr.print(f"robustness plot written to {plot_robustness(result, plot)}", highlight=False)
    if as_json:
        print_json(result.to_json())
        return
    on = f" on the first {images} validation images" if images else ""
    stdout.print(_table(result, f"{target}: top-1 (%){on} over {seeds} seed{'s' * (seeds > 1)}, mean ± std"))


def _run_of(target: Target) -> RunDir:
    """The run a target names: itself, or for a recipe the run `surgery apply` writes by default (runs/<name>)."""
    from surgery.runs import RunDir

    run = target.run or RunDir(Path("runs") / target.recipe.name)
    if not run.student_weights.exists():
        raise SurgeryError(f"{target.text}: no finished run at {run.root} (missing {run.student_weights.name}); run `surgery apply` first or give the run directory")
    return run


def _items(text: str) -> list[str]:
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise SurgeryError(f"{text!r}: an empty item in a comma-separated list")
    return items


def _sigmas(text: str) -> list[float]:
    """--sigma's percentages as fractions, refused unless each is a number from 0 to 100."""
    sigmas = []
    for item in _items(text):
        try:
            value = float(item.removesuffix("%"))
        except ValueError:
            raise SurgeryError(f"--sigma {item!r}: not a number (percent of a cell's conductance)") from None
        if not 0 <= value <= 100:
            raise SurgeryError(f"--sigma {item}: a programming σ is from 0 to 100 (percent of a cell's conductance)")
        sigmas.append(value / 100)
    return sigmas


def _progress(seeds: int) -> Progress:
    """One dim line on stderr per finished setting of a model, so a long sweep shows where it is."""

    def report(name: str, setting: Setting, seed: int, value: float) -> None:
        if seed == seeds - 1:
            stderr.print(f"{name}: {setting.label()}: done", style="dim", highlight=False)

    return report


def _table(result: Robustness, title: str) -> Table:
    summaries = result.to_json()
    table = Table(box=box.SIMPLE_HEAD, title=title)
    table.add_column("setting")
    columns = [(name, "top1", "{:.2f}") for name in result.measured]
    columns += [(name, "fidelity", "{:.4f}") for name in result.measured if "fidelity_mean" in summaries[name][0]]
    for name, metric, _ in columns:
        table.add_column(name if metric == "top1" else f"{name} fidelity", justify="right")
    for index, setting in enumerate(result.settings):
        table.add_row(setting.label(), *(_cell(summaries[name][index], metric, form) for name, metric, form in columns))
    return table


def _cell(summary: dict[str, float | None], metric: str, form: str) -> str:
    std = summary[f"{metric}_std"]
    return form.format(summary[f"{metric}_mean"]) + (f" ± {form.format(std)}" if std is not None else "")
