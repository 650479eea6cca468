"""Rewrite: select sites, plan the surgery without mutating anything, then build the student around adapters."""

from surgery.rewrite.adapters import SiteAdapter
from surgery.rewrite.plan import Plan, Step, block_paths, plan
from surgery.rewrite.select import select
from surgery.rewrite.student import build_student, plan_and_build, substitute_paths, substitutes

__all__ = [
    "Plan",
    "SiteAdapter",
    "Step",
    "block_paths",
    "build_student",
    "plan",
    "plan_and_build",
    "select",
    "substitute_paths",
    "substitutes",
]
