"""Running a whole model the way the crossbars compute it: `device_noise`, one Monte-Carlo draw per seed.

A `TorchFunctionMode` catches the calls that `hwmodel.calls` prices on
crossbars and computes them with `hwmodel.noise`: a product with a constant
(`linear`, `conv2d`, `matmul`) is a Gemm whose weight is programmed once per
seed; `torch.lstm` / `torch.gru` run step by step (`hwmodel.recurrence`) with
every weight product on crossbars; a product of two activations (`matmul`,
and `scaled_dot_product_attention`'s two) is written per product under the
`write` policy and stays exact under `digital`. Any other call that
`hwmodel.calls` would put on crossbars raises. A tensor is a constant when it
is one of the model's parameters or buffers, or a view of one (hwmodel's
extractor says: not derived from the inputs).
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_map

from hwmodel.calls import Operand, classify_call
from hwmodel.device import Device, Noise
from hwmodel.noise import Programmed, noisy_matmul, program_matrix, read_matrix
from hwmodel.pricing import Policy
from hwmodel.recurrence import run_recurrent
from hwmodel.workload import Gemm, Product

_MATMULS = {torch.matmul, torch.Tensor.__matmul__, torch.bmm, torch.mm, torch.Tensor.matmul, torch.Tensor.bmm, torch.Tensor.mm}
_RECURRENT = {torch.lstm: "lstm", torch.gru: "gru"}


@contextmanager
def device_noise(model: nn.Module, device: Device, seed: int, *, time_s: float = 0.0, policy: Policy = "write") -> Iterator[Crossbars]:
    """Within the context, `model`'s forward computes on `device`'s crossbars, as programmed for Monte-Carlo `seed`.

    Weights are programmed on first use from a generator seeded by (seed, parameter
    name), so a seed gives the same programming whatever the batch order; read noise
    and written operands draw from one generator seeded by `seed`. No gradient flows
    through a noisy product; on an ideal device (`noise.ideal`) every call runs as torch
    runs it, so outputs (and gradients) equal the clean model's bit for bit. The yielded `Crossbars` counts the ops it ran by workload kind (`counts`).

    Example:
        >>> from hwmodel import get_device
        >>> model = nn.Sequential(nn.Linear(8, 4))
        >>> x = torch.randn(2, 8)
        >>> with device_noise(model, get_device("isaac", {"noise.ideal": True}), seed=0) as crossbars:
        ...     y = model(x)
        >>> bool(torch.equal(y, model(x))), dict(crossbars.counts)
        (True, {'Gemm': 1})
    """
    crossbars = Crossbars(model, device, seed, time_s=time_s, policy=policy)
    with crossbars:
        yield crossbars


@dataclass(frozen=True)
class MatrixView:
    """The batch of matrices a weight is programmed as, where it lies in the weight:
    `weight.as_strided(shape, stride, weight.storage_offset() + offset)`."""

    shape: tuple[int, ...]
    stride: tuple[int, ...]
    offset: int


def crossbar_weights(model: nn.Module, device: Device, *inputs: Any) -> dict[str, MatrixView]:
    """The parameters and buffers `device_noise` programs onto crossbars when `model` runs on `inputs`, each with the
    view of it that is programmed: the weights hardware-aware training perturbs. One forward, on exact converters.

    Raises:
        NotImplementedError: a weight is programmed as a copy rather than a view of it, so a value written into the
            programmed matrices would not reach the weight.
    """
    exact = device.model_copy(update={"noise": Noise(), "adc": device.adc.model_copy(update={"bits": 16})})
    crossbars = Crossbars(model, exact, seed=0, time_s=0.0, policy="digital")
    with torch.no_grad(), crossbars:
        model(*inputs)
    tensors = dict(chain(model.named_parameters(), model.named_buffers()))
    views = {}
    for name, matrices in crossbars.layouts.items():
        if matrices.untyped_storage().data_ptr() != tensors[name].untyped_storage().data_ptr():
            raise NotImplementedError(f"{name} is programmed as a copy of itself (shape {tuple(matrices.shape)}), not a view")
        views[name] = MatrixView(tuple(matrices.shape), matrices.stride(), matrices.storage_offset() - tensors[name].storage_offset())
    return views


class Crossbars(TorchFunctionMode):
    """The mode behind `device_noise`: routes crossbar ops of one model through one device and seed."""

    def __init__(self, model: nn.Module, device: Device, seed: int, *, time_s: float, policy: Policy) -> None:
        super().__init__()
        if policy not in ("write", "digital"):
            raise ValueError(f"policy must be 'write' or 'digital', got {policy!r}")
        self.device, self.seed, self.time_s, self.policy = device, seed, time_s, policy
        self.names = {id(t): name for name, t in chain(model.named_parameters(), model.named_buffers())}
        self.programmed: dict[str, Programmed] = {}
        self.layouts: dict[str, torch.Tensor] = {}  # the matrices each weight was programmed as
        self.generator = torch.Generator().manual_seed(seed)
        self.counts: Counter[str] = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        handler = None if self.device.noise.ideal else self._handler(func, args)
        out = func(*args, **kwargs) if handler is None else handler(func, *args, **kwargs)
        kinds = self._crossbar_kinds(func, args, kwargs, out)
        if kinds and handler is None and not self._runs_as_is(func):
            raise NotImplementedError(f"device_noise: {_name(func)} runs on crossbars in hwmodel's pricing but is not simulated")
        self.counts.update(kinds)
        return out

    def _handler(self, func, args: tuple):
        if func is F.linear:
            return self._linear
        if func is F.conv2d and self._constant(args[1]) is not None:
            return self._conv2d
        if func in _MATMULS:
            return self._matmul
        if func is F.scaled_dot_product_attention and self.policy == "write":
            return self._attention
        if func in _RECURRENT and len(args) == 9 and args[0].dim() == 3:
            return self._recurrent
        return None

    def _runs_as_is(self, func) -> bool:
        """Calls left to torch on purpose: everything on an ideal device, attention's products under `digital`."""
        return self.device.noise.ideal or (func is F.scaled_dot_product_attention and self.policy == "digital")

    def _crossbar_kinds(self, func, args: tuple, kwargs: dict, out: Any) -> list[str]:
        """The workload kinds hwmodel prices this call as, on crossbars or (Product under `digital`) digitally."""
        if func in _RECURRENT:
            return ["Recurrence"] * args[4] * (2 if args[7] else 1)
        if not isinstance(out, torch.Tensor):
            return []
        drafts = classify_call(_name(func), *tree_map(self._operand, (args, kwargs)), self._operand(out)) or []
        return [type(d.op).__name__ for d in drafts if isinstance(d.op, (Gemm, Product))]

    def _linear(self, func, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        if self._constant(weight) is None:
            out = self._product(torch.matmul, x, weight.transpose(-1, -2))
        else:
            out = self._weight_product(weight, x)
        return out if bias is None else out + bias

    def _conv2d(self, func, x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> torch.Tensor:
        """im2col, as `hwmodel.modules` prices it: one vector of in/groups x kernel values per output position."""
        if isinstance(padding, str):
            raise NotImplementedError(f"device_noise: conv2d with padding={padding!r} is not simulated")
        kernel = weight.shape[-2:]
        columns = F.unfold(x, kernel, dilation=dilation, padding=padding, stride=stride)  # (B, C * kh * kw, L)
        batch, _, positions = columns.shape
        vectors = columns.view(batch, groups, -1, positions).permute(1, 0, 3, 2).reshape(groups, batch * positions, -1)  # (G, B * L, C/G * k)
        out = self._weight_product(weight.view(groups, weight.shape[0] // groups, -1), vectors)  # (G, B * L, O/G)
        size = [_out_size(x.shape[-2 + i], kernel[i], *(_pair(v)[i] for v in (stride, padding, dilation))) for i in range(2)]
        out = out.view(groups, batch, positions, -1).permute(1, 0, 3, 2).reshape(batch, weight.shape[0], *size)
        return out if bias is None else out + bias.view(1, -1, 1, 1)

    def _matmul(self, func, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self._constant(b) is not None and b.dim() == 2:
            return self._weight_product(b.transpose(0, 1), a)
        if self._constant(a) is not None and a.dim() == 2:
            return self._weight_product(a, b.transpose(-1, -2)).transpose(-1, -2)
        return self._product(func, a, b)

    def _attention(self, func, q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **rest) -> torch.Tensor:
        """softmax(q k^T * scale + mask) v with both products written to crossbars (eval mode: no dropout)."""
        if rest:
            raise NotImplementedError(f"device_noise: scaled_dot_product_attention with {sorted(rest)} is not simulated")
        scores = self._product(torch.matmul, q, k.transpose(-1, -2)) * (scale or 1 / math.sqrt(q.shape[-1]))
        if is_causal:
            attn_mask = torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device).tril()
        if attn_mask is not None:
            scores = scores.masked_fill(~attn_mask, -math.inf) if attn_mask.dtype == torch.bool else scores + attn_mask
        return self._product(torch.matmul, scores.softmax(dim=-1), v)

    def _recurrent(self, func, x, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first) -> tuple:
        options = {"has_biases": has_biases, "num_layers": num_layers, "bidirectional": bidirectional, "batch_first": batch_first}
        return run_recurrent(_RECURRENT[func], x, hx, params, linear=self._weight_product, **options)

    def _weight_product(self, weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """x @ weight.T on the crossbars holding `weight` ((N, K), or (G, N, K) with x (G, M, K)), programmed once."""
        with torch.no_grad():  # the device's quantisers have no gradient
            programmed = self._program(weight)
            vectors = x.reshape(programmed.scale.shape[0], -1, x.shape[-1])  # (B, M, K)
            out = read_matrix(programmed, vectors, self.device, self.generator)
        return out.reshape(*x.shape[:-1], weight.shape[-2]).to(x.dtype)

    def _program(self, weight: torch.Tensor) -> Programmed:
        """The crossbars holding a parameter, programmed on its first use; a parameter read as two different matrices
        (weights tied across layouts) would need two programmings, and is refused rather than read from the wrong one."""
        name = self._constant(weight)
        matrices = weight.reshape(-1, *weight.shape[-2:])
        if name not in self.programmed:
            generator = torch.Generator().manual_seed(zlib.crc32(f"{self.seed}:{name}".encode()))  # CPU generators keep 32 bits
            self.programmed[name] = program_matrix(matrices, self.device, generator, time_s=self.time_s)
            self.layouts[name] = matrices
        elif _layout(self.layouts[name]) != _layout(matrices):
            raise NotImplementedError(f"device_noise: {name} is used as two different matrices; tied weights are not simulated")
        return self.programmed[name]

    def _product(self, func, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """a @ b of two activations: b written to crossbars per product under `write` and read at once (no drift), exact
        under `digital`."""
        if self.policy == "digital":
            return func(a, b)
        batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        a, b = a.expand(*batch, *a.shape[-2:]), b.expand(*batch, *b.shape[-2:])
        return noisy_matmul(a, b.transpose(-1, -2), self.device, self.generator)

    def _constant(self, tensor: torch.Tensor) -> str | None:
        """The parameter or buffer name of `tensor` (or of the tensor it views), None for an activation."""
        return self.names.get(id(tensor)) or (self.names.get(id(tensor._base)) if tensor._base is not None else None)

    def _operand(self, value: Any) -> Any:
        if not isinstance(value, torch.Tensor):
            return value
        return Operand(tuple(value.shape), value.element_size(), self._constant(value) is None)


def _layout(matrices: torch.Tensor) -> tuple:
    return matrices.shape, matrices.stride(), matrices.storage_offset(), matrices.untyped_storage().data_ptr()


def _name(func) -> str:
    return getattr(func, "__name__", str(func))


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _out_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
