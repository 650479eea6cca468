"""Graph: torch.fx tracing of timm models, the contraction vocabulary, call binding, and probing untraceable modules."""

from surgery.graph.calls import AttentionCall, CallShapes, passed_arguments
from surgery.graph.contractions import activation_products, contraction_operands
from surgery.graph.probe import probe
from surgery.graph.tracing import TimmTracer, module_stack, propagate_shapes, shape_of, trace

__all__ = [
    "AttentionCall",
    "CallShapes",
    "TimmTracer",
    "activation_products",
    "contraction_operands",
    "module_stack",
    "passed_arguments",
    "probe",
    "propagate_shapes",
    "shape_of",
    "trace",
]
