"""`surgery search`: choose per site what replaces attention, for the lowest predicted loss within a cost budget."""

from __future__ import annotations

from surgery.search.solver import Mix, Option, choose, pareto_front

__all__ = ["Mix", "Option", "choose", "pareto_front"]
