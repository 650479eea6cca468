"""Graph: torch.fx tracing of timm models, the contraction vocabulary, call binding, and probing untraceable modules."""

from surgery.graph.calls import CallShapes, passed_arguments
from surgery.graph.contractions import activation_products, contraction_operands
from surgery.graph.probe import ProbedCall, probe
from surgery.graph.tracing import TimmTracer, module_stack, propagate_shapes, shape_of, trace

__all__ = [
    "CallShapes",
    "ProbedCall",
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
