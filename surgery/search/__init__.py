"""`surgery search`: choose per site what replaces attention, for the lowest predicted loss within a cost budget."""

from __future__ import annotations

from surgery.search.mix_recipe import mix_recipe, write_mix_recipe
from surgery.search.solver import Mix, Option, choose, pareto_front

__all__ = ["Mix", "Option", "choose", "mix_recipe", "pareto_front", "write_mix_recipe"]
