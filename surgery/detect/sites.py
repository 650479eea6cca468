"""Attention detection by dataflow: a site is the innermost module that multiplies two activations.

Class names are never consulted. In a deep trace, every contraction (matmul,
bmm, einsum, scaled_dot_product_attention) whose operands both derive from the
model input is an activation x activation product; the module that owns it
(innermost entry of the node's module stack) is a site. A model torch.fx cannot
trace at all (Hugging Face transformers' BERT) is run instead, under the same
rule (`surgery.graph.probe`).
"""

from __future__ import annotations

import inspect
import operator
from dataclasses import dataclass

import torch
from torch import fx, nn

from hwmodel.dataflow import activation_nodes
from surgery.detect.contracts import ContractError, SiteContract, read_contract
from surgery.errors import SurgeryError
from surgery.graph.calls import AttentionCall, CallShapes, passed_arguments
from surgery.graph.contractions import activation_products, contraction_operands
from surgery.graph.probe import probe
from surgery.graph.shaped import ShapedGraphs, evaluating
from surgery.graph.tracing import module_stack, propagate_shapes, shape_of, trace
from surgery.models import one_line


@dataclass(frozen=True)
class Site:
    """One replaceable attention: where it is, what it computes on, and its head layout."""

    index: int
    path: str
    class_name: str
    signature: str
    layout: str
    dim: int
    num_heads: int
    head_dim: int
    seq_len: int | None
    products: tuple[str, ...]
    extra_inputs: tuple[str, ...] = ()
    """Arguments besides the tokens that the model passes with non-default values (masks, sizes)."""
    contract: SiteContract | None = None
    """How an adapter maps the site's call onto a sequence substitute; None when it cannot."""
    refusal: str = ""
    """Why no adapter fits, when `contract` is None."""

    @property
    def input_shape(self) -> str:
        return f"(B, {self.seq_len if self.seq_len is not None else 'N'}, {self.dim})"

    @property
    def unsupported_extras(self) -> tuple[str, ...]:
        """Extra inputs passed with non-default values that no adapter role covers."""
        roles = self.contract.roles if self.contract else {}
        return tuple(name for name in self.extra_inputs if name not in roles)


def find_sites(model: nn.Module, example: torch.Tensor, graphs: ShapedGraphs | None = None) -> list[Site]:
    """All attention sites of `model`, in module order, with shapes from `example` (a batch of inputs), in eval mode.

    Modules timm keeps opaque to torch.fx are run instead (`surgery.graph.probe`), and so is the whole
    model when torch.fx cannot trace it. `graphs` keeps the trace with the sites as leaves for whoever
    checks, counts or prices the model next.

    Example:
        >>> import timm, torch
        >>> model = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2)
        >>> [s.path for s in find_sites(model, torch.randn(1, 3, 32, 32))]
        ['blocks.0.attn', 'blocks.1.attn']
    """
    with evaluating(model):
        return _find_sites(model, example, graphs or ShapedGraphs())


def _find_sites(model: nn.Module, example: torch.Tensor, graphs: ShapedGraphs) -> list[Site]:
    try:
        deep = trace(model)
    except SurgeryError:  # untraceable as a whole (a Hugging Face model): probe every module by running it
        try:
            probed = probe(model, example, [name for name, _ in model.named_children()])
        except Exception as error:  # the model's own error, of any type
            raise SurgeryError(f"{type(model).__name__} does not run on its example input: {one_line(error)}") from error
        if not probed:
            raise  # running it found no site either: the trace's refusal says more
        return _describe_all(model, probed)
    propagate_shapes(deep, example)
    products, carries = _products_by_owner(deep), activation_nodes(deep.graph)
    opaque = _opaque_modules(deep, model)
    probed = probe(model, example, opaque) if opaque else {}
    shallow = graphs.of(model, [*products, *probed], example)
    if shallow is None:
        raise SurgeryError(f"{type(model).__name__}: torch.fx traces the model whole but not with its sites kept as leaves")
    calls = {node.target: node for node in shallow.graph.nodes if node.op == "call_module"}
    described = {path: _traced(calls[path], nodes, carries, model.get_submodule(path)) for path, nodes in products.items()}
    described.update(probed)
    return _describe_all(model, described)


def _describe_all(model: nn.Module, described: dict[str, AttentionCall]) -> list[Site]:
    """Sites of the calls seen, in module order."""
    order = {path: index for index, (path, _) in enumerate(model.named_modules())}
    paths = sorted(described, key=order.__getitem__)
    return [_describe(index, model, path, described[path]) for index, path in enumerate(paths)]


def _opaque_modules(graph_module: fx.GraphModule, model: nn.Module) -> list[str]:
    """Leaf modules of the deep trace that are not torch's own: timm's untraceable ones, to be probed."""
    paths = [node.target for node in graph_module.graph.nodes if node.op == "call_module"]
    return [path for path in dict.fromkeys(paths) if not type(model.get_submodule(path)).__module__.startswith("torch.")]


def _traced(call: fx.Node, products: list[fx.Node], carries: set[fx.Node], module: nn.Module) -> AttentionCall:
    """A shallow-traced call as shapes: its input, its output, and its (deep-traced) products' activation operands."""
    first = shape_of(call.args[0]) if call.args and isinstance(call.args[0], fx.Node) else None
    operands = tuple(shape for node in products for arg in contraction_operands(node) if arg in carries and (shape := shape_of(arg)) is not None)
    names = tuple(_describe_product(node) for node in products)
    residual = _adds_input(products[0].graph, call.target, carries)
    return AttentionCall(CallShapes(first, shape_of(call), operands, residual), names, _extra_inputs(call, module), _query_shape(products[0]))


def _adds_input(graph: fx.Graph, path: str, carries: set[fx.Node]) -> bool:
    """Whether the module at `path` adds one of its activation inputs to a value it computed: a residual."""
    inside = {node for node in graph.nodes if path in module_stack(node)}
    for node in inside:
        if node.target in (operator.add, torch.add, operator.iadd) or node.target == "add":
            operands = [a for a in node.args if isinstance(a, fx.Node)]
            if any(a not in inside and a in carries for a in operands) and any(a in inside for a in operands):
                return True
    return False


def _products_by_owner(graph_module: fx.GraphModule) -> dict[str, list[fx.Node]]:
    owners: dict[str, list[fx.Node]] = {}
    for node in activation_products(graph_module):
        stack = module_stack(node)
        if not stack:
            raise SurgeryError(f"{node.name}: an activation x activation product outside any submodule cannot be a site")
        owners.setdefault(stack[-1], []).append(node)
    return owners


def _describe(index: int, model: nn.Module, path: str, seen: AttentionCall) -> Site:
    module = model.get_submodule(path)
    names = list(inspect.signature(module.forward).parameters)
    contract, refusal = None, ""
    try:
        contract = read_contract(model, path, seen.shapes, names[1:])
    except ContractError as error:
        refusal = str(error)
    dim, seq_len = _width_and_length(seen.shapes.input, contract)
    num_heads, head_dim = _head_layout(seen.query)
    return Site(
        index=index,
        path=path,
        class_name=type(module).__name__,
        signature=f"{type(module).__name__}.forward{inspect.signature(module.forward)}",
        layout=contract.layout if contract else "unsupported",
        dim=dim,
        num_heads=num_heads,
        head_dim=head_dim,
        seq_len=seq_len,
        products=seen.products,
        extra_inputs=seen.extra_inputs,
        contract=contract,
        refusal=refusal,
    )


def _width_and_length(shape: tuple[int, ...] | None, contract: SiteContract | None) -> tuple[int, int | None]:
    """(C, N) the substitute sees: tokens as they are, 2-D maps as H·W tokens of C channels."""
    if contract is None or shape is None:
        return 0, None
    if contract.layout == "channels_first":
        return shape[1], shape[2] * shape[3]
    if contract.layout == "channels_last":
        return shape[3], shape[1] * shape[2]
    if contract.layout == "grouped_tokens":
        return shape[3], shape[2]
    return shape[2], shape[1]


def _extra_inputs(call: fx.Node, module: nn.Module) -> tuple[str, ...]:
    """Names of the call's arguments after the first that are not left at the forward's defaults."""
    return passed_arguments(module, call.args, call.kwargs, _differs)


def _differs(value: object, default: object) -> bool:
    """A traced value counts as the default None when shape propagation found it None (a mask built only for padded input)."""
    if isinstance(value, fx.Node):
        return not (default is None and value.meta.get("type") is type(None))
    return value != default


def _head_layout(query: tuple[int, ...] | None) -> tuple[int, int]:
    """(heads, head width) from the query operand's shape: (..., H, N, d) or (B*H, N, d)."""
    if query is None or len(query) < 3:
        return 1, query[-1] if query else 0
    return (query[-3] if len(query) >= 4 else 1), query[-1]


def _query_shape(product: fx.Node) -> tuple[int, ...] | None:
    query = product.args[1] if product.target is torch.einsum else product.args[0]
    return shape_of(query) if isinstance(query, fx.Node) else None


def _describe_product(node: fx.Node) -> str:
    return getattr(node.target, "__name__", str(node.target))
