"""Analyze: attention sparsity of a run or recipe, dependency maps, and how much of timm the surgery covers."""

from surgery.analyze.dependency import dependency_maps
from surgery.analyze.sparsity import analyze, plot_sparsity

__all__ = ["analyze", "dependency_maps", "plot_sparsity"]
