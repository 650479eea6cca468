"""Analyze: attention sparsity of a run or recipe, teacher vs student dependency maps, and how much of timm the surgery covers."""

from surgery.analyze.maps import MapsReport, dependency_maps
from surgery.analyze.sparsity import analyze, plot_sparsity

__all__ = ["MapsReport", "analyze", "dependency_maps", "plot_sparsity"]
