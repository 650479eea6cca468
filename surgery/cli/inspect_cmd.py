"""`surgery inspect MODEL`: the attention sites of any timm model, found by dataflow."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer

from surgery.cli.common import DeviceOption, JsonOption, handles_errors, print_json, stdout
from surgery.cli.render import sites_table
from surgery.errors import SurgeryError
from surgery.models import build_model, example_input, input_size
from surgery.sites import find_sites

KwargOption = Annotated[
    list[str],
    typer.Option("--kwarg", "-k", help="timm.create_model keyword: key=value (value read as JSON, else a string)."),
]


@handles_errors
def inspect(
    model: Annotated[str, typer.Argument(help="timm model name, e.g. deit_tiny_patch16_224.")],
    kwargs: KwargOption = [],
    device: DeviceOption = "cpu",
    as_json: JsonOption = False,
) -> None:
    """List every attention site: path, class, heads, widths, tokens and the products found."""
    built = build_model(model, parse_kwargs(kwargs), device=device)
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
