"""Which torch modules are ops in themselves, and their shapes.

Linear and convolution layers are weight-stationary GEMMs (a convolution as
im2col: one vector of in/groups x kernel values per output position); an LSTM,
GRU or RNN is one `Recurrence` per layer and direction; norms and activation
modules are digital ops; dropout and identity are free. Any other module is
not primitive: the fx graph shows its insides, or the recorder expands it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import nn

from hwmodel.calls import Draft, Operand
from hwmodel.workload import Elementwise, Gemm, Nonlinear, Recurrence

_NONLINEAR_MODULES: dict[type[nn.Module], str] = {
    nn.LayerNorm: "layernorm",
    nn.GroupNorm: "layernorm",
    nn.GELU: "gelu",
    nn.Sigmoid: "sigmoid",
    nn.Tanh: "tanh",
    nn.SiLU: "silu",
    nn.ReLU: "relu",
    nn.Softmax: "softmax",
}
_FREE_MODULES = (nn.Dropout, nn.Identity)
_CELLS: dict[type[nn.Module], str] = {nn.LSTM: "lstm", nn.GRU: "gru", nn.RNN: "rnn"}


def is_primitive(module: nn.Module) -> bool:
    return _rule(module) is not None


def classify_module(module: nn.Module, inputs: list[Operand], out: Operand | None) -> list[Draft] | None:
    """The ops of one module call, or None when the module is not primitive."""
    rule = _rule(module)
    if rule is None:
        return None
    if not inputs or not inputs[0].activation:
        return []  # a module applied to constants folds away
    return rule(module, inputs[0], out)


Rule = Callable[[nn.Module, Operand, Operand | None], list[Draft]]


def _rule(module: nn.Module) -> Rule | None:
    for kind, rule in _RULES:
        if isinstance(module, kind):
            return rule
    return None


def _linear(module: nn.Linear, x: Operand, out: Operand | None) -> list[Draft]:
    vectors = math.prod(x.shape[:-1])
    return [Draft(Gemm(rows=module.in_features, cols=module.out_features, vectors=vectors, itemsize=x.itemsize))]


def _conv(module: nn.modules.conv._ConvNd, x: Operand, out: Operand | None) -> list[Draft]:
    """im2col: rows are one group's inputs under the kernel; one vector per output position."""
    if out is None:
        raise ValueError(f"{type(module).__name__}: the output shape is unknown; run ShapeProp first")
    groups = module.groups
    rows = module.in_channels // groups * math.prod(module.kernel_size)
    vectors = math.prod(out.shape) // module.out_channels
    gemm = Gemm(rows=rows, cols=module.out_channels // groups, vectors=vectors, groups=groups, itemsize=x.itemsize)
    return [Draft(gemm)]


def _recurrent(module: nn.RNNBase, x: Operand, out: Operand | None) -> list[Draft]:
    """One Recurrence per layer and direction; a layer's directions wait for the whole layer below."""
    if len(x.shape) == 2:  # unbatched (T, input)
        steps, batch = x.shape[0], 1
    else:
        steps, batch = (x.shape[1], x.shape[0]) if module.batch_first else (x.shape[0], x.shape[1])
    directions = 2 if module.bidirectional else 1
    drafts: list[Draft] = []
    for layer in range(module.num_layers):
        below = tuple(range(len(drafts) - directions, len(drafts))) if layer else ()
        width = module.input_size if layer == 0 else module.hidden_size * directions
        op = Recurrence(
            cell=_cell(module), input_size=width, hidden_size=module.hidden_size, steps=steps, batch=batch, itemsize=x.itemsize
        )
        drafts += [Draft(op, below)] * directions
    return drafts


def _cell(module: nn.Module) -> str:
    return next(cell for kind, cell in _CELLS.items() if isinstance(module, kind))


def _nonlinear(module: nn.Module, x: Operand, out: Operand | None) -> list[Draft]:
    fn = next(fn for kind, fn in _NONLINEAR_MODULES.items() if isinstance(module, kind))
    return [Draft(Nonlinear(fn=fn, elements=math.prod(x.shape), itemsize=x.itemsize))]


def _batch_norm(module: nn.Module, x: Operand, out: Operand | None) -> list[Draft]:
    return [Draft(Elementwise(fn="affine", elements=math.prod(x.shape), operands=1, itemsize=x.itemsize))]


def _free(module: nn.Module, x: Operand, out: Operand | None) -> list[Draft]:
    return []


_RULES: list[tuple[type | tuple[type, ...], Rule]] = [
    (nn.Linear, _linear),
    (nn.modules.conv._ConvNd, _conv),
    (tuple(_CELLS), _recurrent),
    (tuple(_NONLINEAR_MODULES), _nonlinear),
    (nn.modules.batchnorm._BatchNorm, _batch_norm),
    (_FREE_MODULES, _free),
]
