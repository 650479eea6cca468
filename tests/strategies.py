"""Hypothesis strategies shared by the property tests: tiny timm ViTs and selections of their sites.

Every model here is small enough to build, trace and rewrite in well under a second,
so a property can afford a dozen examples.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import timm
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from torch import nn

# Fixed seeds (derandomize) keep the suite reproducible; a dozen examples keep it fast.
PROPERTY_SETTINGS = settings(
    deadline=None,
    max_examples=12,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def single_thread() -> Iterator[None]:
    """One intra-op thread for a module's tests: on tiny tensors extra threads only contend.

    On a loaded 2-core machine a tiny ViT's forward and backward took 4-24 s with the
    default thread pool and 0.04 s with one thread. Use with
    `pytestmark = pytest.mark.usefixtures("single_thread")` after importing it.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@dataclass(frozen=True)
class VitConfig:
    """One small `VisionTransformer`: every field maps onto a `timm.create_model` keyword."""

    depth: int
    num_heads: int
    head_dim: int
    patch_size: int
    grid: int
    in_chans: int
    class_token: bool
    reg_tokens: int
    no_embed_class: bool
    global_pool: str
    num_classes: int
    fused_attn: bool

    @property
    def embed_dim(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def img_size(self) -> int:
        return self.grid * self.patch_size

    @property
    def seq_len(self) -> int:
        """Tokens entering each attention: patches, then the class and register tokens."""
        return self.grid**2 + int(self.class_token) + self.reg_tokens

    @property
    def input_size(self) -> tuple[int, int, int]:
        return self.in_chans, self.img_size, self.img_size

    def kwargs(self) -> dict[str, object]:
        return {
            "img_size": self.img_size,
            "patch_size": self.patch_size,
            "in_chans": self.in_chans,
            "embed_dim": self.embed_dim,
            "depth": self.depth,
            "num_heads": self.num_heads,
            "class_token": self.class_token,
            "reg_tokens": self.reg_tokens,
            "no_embed_class": self.no_embed_class,
            "global_pool": self.global_pool,
            "num_classes": self.num_classes,
        }


def build_vit(config: VitConfig) -> nn.Module:
    """The model `config` describes, in eval mode, with its attention fused or explicit."""
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, **config.kwargs()).eval()
    set_fused_attn(model, config.fused_attn)
    return model


def set_fused_attn(model: nn.Module, fused: bool) -> None:
    """`fused_attn=False` makes timm's Attention compute q @ kᵀ and attn @ v as explicit matmuls."""
    for module in model.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = fused


# Patch size -> grid sizes that keep the image between 8 and 32 pixels.
_GRIDS = {4: (2, 8), 8: (1, 4), 16: (1, 2)}


@st.composite
def vit_configs(draw: st.DrawFn, max_depth: int = 3) -> VitConfig:
    """Small ViTs: 1-`max_depth` blocks, 1-4 heads of 4-16, 8-32 px, with or without prefix tokens."""
    patch_size = draw(st.sampled_from(sorted(_GRIDS)))
    class_token = draw(st.booleans())
    # timm refuses 'token' pooling without a class token; 'map'/'prr' add an attention pool (another site).
    pools = ["token", "avg"] if class_token else ["avg", "max", "avgmax", ""]
    return VitConfig(
        depth=draw(st.integers(1, max_depth)),
        num_heads=draw(st.integers(1, 4)),
        head_dim=draw(st.integers(4, 16)),
        patch_size=patch_size,
        grid=draw(st.integers(*_GRIDS[patch_size])),
        in_chans=draw(st.sampled_from([1, 3])),
        class_token=class_token,
        reg_tokens=draw(st.integers(0, 2)),
        no_embed_class=draw(st.booleans()),
        global_pool=draw(st.sampled_from(pools)),
        num_classes=draw(st.integers(1, 10)),
        fused_attn=draw(st.booleans()),
    )


@dataclass(frozen=True)
class Selection:
    """A recipe selector (as YAML would spell it) and the site indices it must pick."""

    selector: dict[str, object]
    expected: frozenset[int]


def attn_path(index: int) -> str:
    return f"blocks.{index}.attn"


@st.composite
def selections(draw: st.DrawFn, depth: int) -> Selection:
    """A non-empty choice of a ViT's `depth` attention sites, by layer indices or by path globs."""
    chosen = frozenset(draw(st.sets(st.integers(0, depth - 1), min_size=1)))
    indices = sorted(chosen)
    every = frozenset(range(depth))
    spellings = [
        {"layers": indices},
        {"layers": ",".join(map(str, indices))},
        {"path": [attn_path(i) for i in indices]},
        {"path": attn_path(indices[0])} if len(indices) == 1 else {"layers": _ranges(indices)},
    ]
    if chosen == every:
        spellings += [{}, {"path": "blocks.*.attn"}, {"path": "*attn", "class": "Attent*"}]
    else:
        spellings.append({"path": "blocks.*", "exclude": [attn_path(i) for i in sorted(every - chosen)]})
    return Selection(draw(st.sampled_from(spellings)), chosen)


def _ranges(indices: list[int]) -> str:
    """"0-2,5" spelling of sorted indices."""
    runs: list[list[int]] = []
    for index in indices:
        if runs and index == runs[-1][-1] + 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    return ",".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)


@st.composite
def surgeries(draw: st.DrawFn, max_depth: int = 3) -> tuple[VitConfig, Selection]:
    """A model config and a selection of its sites."""
    config = draw(vit_configs(max_depth))
    return config, draw(selections(config.depth))
