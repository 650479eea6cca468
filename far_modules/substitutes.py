"""The substitute registry: built-ins by name, third-party ones through entry points.

A third-party package registers a substitute class in its `pyproject.toml`:

    [project.entry-points."surgery.substitutes"]
    my_mixer = "my_pkg.mixer:MyMixer"

The class needs `from_site(spec, *, source=None, **options) -> nn.Module`.
"""

from __future__ import annotations

import inspect
from functools import cache
from importlib.metadata import EntryPoint, entry_points

from torch import nn

from far_modules.bilstm import MultiHeadBiGRU, MultiHeadBiLSTM
from far_modules.conv import TokenConv
from far_modules.identity import DropAttention
from far_modules.linear_attention import LinearAttention
from far_modules.registry import Registry, UnknownNameError
from far_modules.spec import SiteSpec
from far_modules.ssm import SelectiveSSM

ENTRY_POINT_GROUP = "surgery.substitutes"

SUBSTITUTES: Registry[type[nn.Module]] = Registry("substitute")
SUBSTITUTES.add("bilstm", MultiHeadBiLSTM)
SUBSTITUTES.add("bigru", MultiHeadBiGRU)
SUBSTITUTES.add("conv", TokenConv)
SUBSTITUTES.add("linear_attention", LinearAttention)
SUBSTITUTES.add("ssm", SelectiveSSM)
SUBSTITUTES.add("identity", DropAttention)



class PluginError(LookupError):
    """A substitute named by an entry point could not be imported; names the plug-in and the cause."""


@cache
def _plugins() -> dict[str, EntryPoint]:
    """Entry points by name, discovered once and loaded only when asked for, so one broken
    plug-in fails its own lookups (loudly) and no one else's."""
    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}


def _load_plugin(name: str) -> None:
    point = _plugins()[name]
    try:
        SUBSTITUTES.add(name, point.load())
    except Exception as error:  # an import of third-party code can fail in any way
        raise PluginError(f"substitute {name!r} from entry point {point.value!r} failed to load: {error}") from error


def register_substitute(name: str):
    """Class decorator that registers a substitute under `name` (a snake_case YAML name)."""
    return SUBSTITUTES.register(name)


def get_substitute(name: str) -> type[nn.Module]:
    """The substitute class registered as `name`.

    Raises:
        UnknownNameError: no built-in or plug-in has that name (close names suggested).
        PluginError: the plug-in of that name fails to import.
    """
    if name not in SUBSTITUTES and name in _plugins():
        _load_plugin(name)
    if name not in SUBSTITUTES:
        raise UnknownNameError(SUBSTITUTES.kind, name, substitute_names())
    return SUBSTITUTES.get(name)


def substitute_names() -> list[str]:
    """Built-in and plug-in substitute names (plug-ins listed without importing them)."""
    return sorted({*SUBSTITUTES.names(), *_plugins()})


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
