"""Building the teacher: timm models by name, with hub weights or a local checkpoint."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

from surgery.errors import SurgeryError

if TYPE_CHECKING:
    from surgery.recipe import Recipe

Device = Literal["cpu", "cuda", "meta"]


def check_model_name(name: str) -> None:
    """Raise with the closest timm names when `name` (optionally `arch.pretrained_tag`) is unknown."""
    import timm

    if timm.is_model(name):
        return
    close = difflib.get_close_matches(name.split(".")[0], timm.list_models(), n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `timm.list_models('*pattern*')` lists names"
    raise SurgeryError(f"model.name: {name!r} is not a timm model{hint}")


def build_model(
    name: str,
    kwargs: dict[str, object] | None = None,
    *,
    pretrained: bool = False,
    checkpoint: str | None = None,
    device: Device = "cpu",
) -> nn.Module:
    """Create a timm model in eval mode on `device`; `meta` allocates no weights (for planning).

    Hub weights come from timm's own loader (Hugging Face Hub cache, `HF_HUB_OFFLINE=1` to
    stay offline); `checkpoint` is a local `.safetensors`/`.pth` file loaded by timm.
    """
    import timm

    check_model_name(name)
    if device == "meta" and (pretrained or checkpoint):
        raise SurgeryError("--device meta plans shapes only; it cannot load pretrained weights or a checkpoint")
    try:
        with torch.device(device):
            model = timm.create_model(name, pretrained=pretrained, checkpoint_path=checkpoint, **(kwargs or {}))
    except Exception as error:  # a constructor fed the user's keywords fails in any way (OverflowError, IndexError, ...)
        source = f"checkpoint {checkpoint}" if checkpoint else f"kwargs {kwargs or {}}"
        raise SurgeryError(f"model {name!r} with {source}: {one_line(error)}") from error
    return model.eval()


def recipe_model(recipe: Recipe, device: Device = "cpu", *, weights: bool = False) -> nn.Module:
    """The recipe's model, with its hub weights or checkpoint when `weights`; a refusal names the recipe line behind it.

    A keyword timm rejects is located at that keyword when the message names it, else at `model.kwargs`.
    """
    spec = recipe.model
    checkpoint = str(spec.checkpoint) if weights and spec.checkpoint else None
    try:
        return build_model(spec.name, spec.kwargs, pretrained=weights and spec.pretrained, checkpoint=checkpoint, device=device)
    except SurgeryError as error:
        named = [key for key in spec.kwargs if key in str(error.__cause__ or "")]
        key = ("model", "checkpoint") if checkpoint else ("model", "kwargs", *named[:1]) if spec.kwargs else ("model", "name")
        where = recipe.location_of(key)
        if where is None:
            raise
        raise SurgeryError(f"{where}: {error}") from error


def one_line(error: Exception, limit: int = 400) -> str:
    """torch's load errors list every mismatched tensor on its own line; keep the first few on one."""
    text = " ".join(part.strip() for part in str(error).splitlines() if part.strip())
    return text if len(text) <= limit else f"{text[:limit]} ..."


def input_size(model: nn.Module, override: tuple[int, int, int] | None = None) -> tuple[int, int, int]:
    """(C, H, W) the model expects: the recipe's override, else the size its modules were built for, else timm's config.

    timm keeps the `img_size` a model was built with on the model or its first
    embedding (`patch_embed`, `pixel_embed`, `patch_embed1`, ...), while the
    pretrained config keeps the default; the channels are the model's `in_chans`, else the
    first convolution's (a stem that transforms the image first, as CSATv2's DCT, has no
    convolution on the image itself).
    """
    if override is not None:
        return override
    from timm.data import resolve_model_data_config

    channels, height, width = resolve_model_data_config(model)["input_size"]
    size = next((s for s in (_img_size(m) for m in model.modules()) if s is not None), None)
    if size is not None:
        height, width = size
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    stated = getattr(model, "in_chans", None)
    if isinstance(stated, int) and not isinstance(stated, bool):
        channels = stated
    elif conv is not None:
        channels = conv.in_channels
    return int(channels), int(height), int(width)


def _img_size(module: nn.Module) -> tuple[int, int] | None:
    size = getattr(module, "img_size", None)
    if isinstance(size, int) and not isinstance(size, bool):
        return size, size
    if isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(s, int) for s in size):
        return int(size[0]), int(size[1])
    return None


def example_input(model: nn.Module, size: tuple[int, int, int], batch: int = 1) -> torch.Tensor:
    """A random batch on the model's device, for tracing and shape propagation."""
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(0)
    if device.type == "meta":
        return torch.empty(batch, *size, device="meta")
    return torch.randn(batch, *size, generator=generator).to(device)
