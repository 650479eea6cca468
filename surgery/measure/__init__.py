"""Measure: parameters and MACs, the ReRAM and GPU cost of teacher and student, and their tables and plots."""

from surgery.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "CostReport": "surgery.measure.costing",
        "Counts": "surgery.measure.counting",
        "PlanSummary": "surgery.measure.summary",
        "count": "surgery.measure.counting",
        "price_models": "surgery.measure.costing",
        "summarize_recipe": "surgery.measure.summary",
    },
)
__all__ = ["CostReport", "Counts", "PlanSummary", "count", "price_models", "summarize_recipe"]
