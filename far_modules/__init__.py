"""Substitute modules for attention, their registry, and the shapes they are built from."""

from far_modules.bilstm import MultiHeadBiLSTM
from far_modules.registry import Registry, UnknownNameError
from far_modules.spec import SiteSpec
from far_modules.substitutes import (
    SUBSTITUTES,
    build_substitute,
    get_substitute,
    register_substitute,
    substitute_names,
    substitute_options,
)

__all__ = [
    "SUBSTITUTES",
    "MultiHeadBiLSTM",
    "Registry",
    "SiteSpec",
    "UnknownNameError",
    "build_substitute",
    "get_substitute",
    "register_substitute",
    "substitute_names",
    "substitute_options",
]
