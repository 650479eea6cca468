"""Measure: parameters and MACs, the ReRAM and GPU cost of teacher and student, and their tables and plots."""

from surgery.measure.costing import CostReport, price_models
from surgery.measure.counting import Counts, count
from surgery.measure.summary import PlanSummary, summarize_recipe

__all__ = ["CostReport", "Counts", "PlanSummary", "count", "price_models", "summarize_recipe"]
