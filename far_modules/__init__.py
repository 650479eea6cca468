"""Substitute modules for attention, their registry, the shapes they are built from, and their pruning."""

from far_modules.bilstm import MultiHeadBiGRU, MultiHeadBiLSTM
from far_modules.conv import TokenConv
from far_modules.identity import DropAttention
from far_modules.linear_attention import LinearAttention
from far_modules.prune import (
    DIRECTIONS,
    Direction,
    Prunable,
    PruningReport,
    UnitGroup,
    UnitKey,
    check_keep,
    group_hs,
    hoyer_penalty,
    keep_masks,
    prunable_modules,
    pruning_report,
    shrink_uniformly,
    uniform_keep,
    unit_counts,
)
from far_modules.registry import Registry, UnknownNameError
from far_modules.spec import CostKind, SiteSpec
from far_modules.ssm import SelectiveSSM
from far_modules.substitutes import (
    SUBSTITUTES,
    PluginError,
    build_substitute,
    get_substitute,
    register_substitute,
    substitute_names,
    substitute_options,
)

__all__ = [
    "DIRECTIONS",
    "SUBSTITUTES",
    "CostKind",
    "Direction",
    "DropAttention",
    "LinearAttention",
    "MultiHeadBiGRU",
    "MultiHeadBiLSTM",
    "PluginError",
    "Prunable",
    "PruningReport",
    "Registry",
    "SelectiveSSM",
    "SiteSpec",
    "TokenConv",
    "UnitGroup",
    "UnitKey",
    "UnknownNameError",
    "build_substitute",
    "check_keep",
    "get_substitute",
    "group_hs",
    "hoyer_penalty",
    "keep_masks",
    "prunable_modules",
    "pruning_report",
    "register_substitute",
    "shrink_uniformly",
    "substitute_names",
    "substitute_options",
    "uniform_keep",
    "unit_counts",
]
