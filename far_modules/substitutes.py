"""The substitute registry: built-ins by name, third-party ones through entry points.

A third-party package registers a substitute class in its `pyproject.toml`:

    [project.entry-points."surgery.substitutes"]
    my_mixer = "my_pkg.mixer:MyMixer"

The class needs `from_site(spec, *, source=None, **options) -> nn.Module`.
"""

from __future__ import annotations

import inspect
from importlib.metadata import entry_points

from torch import nn

from far_modules.bilstm import MultiHeadBiLSTM
from far_modules.registry import Registry
from far_modules.spec import SiteSpec

ENTRY_POINT_GROUP = "surgery.substitutes"

SUBSTITUTES: Registry[type[nn.Module]] = Registry("substitute")
SUBSTITUTES.add("bilstm", MultiHeadBiLSTM)

_loaded_entry_points = False


def _load_entry_points() -> None:
    global _loaded_entry_points
    if _loaded_entry_points:
        return
    _loaded_entry_points = True
    for point in entry_points(group=ENTRY_POINT_GROUP):
        SUBSTITUTES.add(point.name, point.load())


def register_substitute(name: str):
    """Class decorator that registers a substitute under `name` (a snake_case YAML name)."""
    return SUBSTITUTES.register(name)


def get_substitute(name: str) -> type[nn.Module]:
    """The substitute class registered as `name`; raises `UnknownNameError` with close names."""
    _load_entry_points()
    return SUBSTITUTES.get(name)


def substitute_names() -> list[str]:
    _load_entry_points()
    return SUBSTITUTES.names()


def substitute_options(name: str) -> dict[str, inspect.Parameter]:
    """The keyword options `from_site` of substitute `name` accepts (recipe `params`)."""
    signature = inspect.signature(get_substitute(name).from_site)
    return {
        key: param
        for key, param in signature.parameters.items()
        if param.kind is inspect.Parameter.KEYWORD_ONLY and key != "source"
    }


def build_substitute(name: str, spec: SiteSpec, source: nn.Module | None = None, **options: object) -> nn.Module:
    """Build substitute `name` for a site; `source` is the module it replaces (for initialisation)."""
    return get_substitute(name).from_site(spec, source=source, **options)
