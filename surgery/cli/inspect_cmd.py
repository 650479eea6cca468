"""`surgery inspect MODEL`: the attention sites of any timm model, found by dataflow."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer

from surgery.cli.common import DeviceOption, JsonOption, handles_errors, print_json, stdout
from surgery.errors import SurgeryError

KwargOption = Annotated[
    list[str],
    typer.Option("--kwarg", "-k", help="timm.create_model keyword: key=value (value read as JSON, else a string)."),
]


@handles_errors
def inspect(
    model: Annotated[str | None, typer.Argument(help="timm model name, e.g. deit_tiny_patch16_224.")] = None,
    kwargs: KwargOption = [],
    device: DeviceOption = "cpu",
    all_families: Annotated[
        bool, typer.Option("--all-families", help="Check one small model of every timm attention family end to end instead.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """List every attention site: path, class, heads, widths, tokens, how it is adapted, and the products found."""
    from surgery.cli.render import sites_table
    from surgery.detect.sites import find_sites
    from surgery.models import build_model, example_input, input_size
    from surgery.targets import resolve_target

    if all_families:
        if model is not None or kwargs:
            raise SurgeryError("--all-families checks its own list of models; give no MODEL or --kwarg with it")
        _all_families(as_json)
        return
    if model is None:
        raise SurgeryError("give a timm model name, or --all-families")
    built = build_model(resolve_target(model, accepts=("model",)).recipe.model.name, parse_kwargs(kwargs), device=device)
    size = input_size(built)
    sites = find_sites(built, example_input(built, size))
    if as_json:
        print_json({"model": model, "input_size": size, "sites": [asdict(site) for site in sites]})
        return
    stdout.print(sites_table(f"{model}: {len(sites)} attention sites at input {size}", sites))


def parse_kwargs(items: list[str]) -> dict[str, object]:
    """`key=value` pairs; values are JSON when they parse (32, true, [1, 2]), strings otherwise."""
    parsed: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SurgeryError(f"--kwarg {item!r}: expected key=value")
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    return parsed


def _all_families(as_json: bool) -> None:
    """`surgery.analyze.coverage` over every family: sites, rewrite, forward, one distillation step, ONNX export."""
    from surgery.analyze.coverage import check_families, coverage
    from surgery.cli.render import families_table

    with stdout.status("checking timm attention families") as status:
        results = []
        for result in check_families(progress=lambda r: status.update(f"checked {r.family}")):
            results.append(result)
    if as_json:
        print_json({"families": [r.to_json() for r in results], "coverage": coverage(results)})
        return
    stdout.print(families_table(results))
    stdout.print(f"coverage: {sum(r.ok for r in results)} of {len(results)} families ({coverage(results):.0%}) rewrite, run and distill")
