"""`surgery cost MODEL_OR_RECIPE`: teacher vs student on a ReRAM crossbar accelerator, beside a GPU roofline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from surgery.cli.common import DeviceOption, JsonOption, SetOption, handles_errors, print_json, stderr, stdout, warn_skipped


@handles_errors
def cost(
    target: Annotated[
        str,
        typer.Argument(metavar="MODEL_OR_RECIPE", help="Recipe YAML file, or a timm model name (every attention → bilstm)."),
    ],
    overrides: SetOption = [],
    img_size: Annotated[int | None, typer.Option("--img-size", min=1, help="Image side in pixels (model.kwargs.img_size).")] = None,
    policy: Annotated[
        Literal["write", "digital"] | None,
        typer.Option("--policy", help="Activation × activation products: written into crossbars, or on digital MAC lanes."),
    ] = None,
    preset: Annotated[str | None, typer.Option("--device-preset", "--preset", help="Crossbar device: isaac, neurosim.")] = None,
    gpu: Annotated[str | None, typer.Option("--gpu", help="GPU of the roofline baseline: v100, a100, h100.")] = None,
    device: DeviceOption = "meta",
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a PNG stacked bar of energy by component here.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Latency, energy, memory traffic, crossbars, area and ADC share, per block and in total; no weights needed."""
    from surgery.cli.render import cost_tables
    from surgery.graph.shaped import ShapedGraphs
    from surgery.measure.costing import price_models
    from surgery.measure.plots import plot_energy
    from surgery.rewrite.student import plan_and_build
    from surgery.targets import resolve_target

    recipe = resolve_target(target, [*overrides, *option_overrides(img_size, policy, preset, gpu)], accepts=("recipe", "model")).recipe
    graphs = ShapedGraphs()
    planned = plan_and_build(recipe, device, graphs)
    warn_skipped(planned[0].skipped)
    report = price_models(recipe, *planned, graphs).to_json()
    if plot is not None:
        plot_energy(report, plot)
        stderr.print(f"energy plot written to {plot}", highlight=False)
    if as_json:
        print_json(report)
        return
    for table in cost_tables(report):
        stdout.print(table)


def option_overrides(img_size: int | None, policy: str | None, preset: str | None, gpu: str | None) -> list[str]:
    """The options as `--set` texts, applied after the user's; a new image size lets the model give the input size."""
    sets = [f"model.kwargs.img_size={img_size}", "model.input_size=null"] if img_size is not None else []
    named = {"hardware.policy": policy, "hardware.preset": preset, "hardware.gpu": gpu}
    return sets + [f"{key}={value}" for key, value in named.items() if value is not None]
