"""Appending the drafts of one call to a growing op list, wiring their dependencies."""

from __future__ import annotations

from dataclasses import replace

from hwmodel.calls import Draft
from hwmodel.workload import Op, Workload

Frontier = frozenset[int]


class Builder:
    """Collects ops in execution order and the names of calls that could not be priced."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self._skipped: dict[str, None] = {}

    def place(self, drafts: list[Draft], incoming: Frontier, path: str, name: str) -> Frontier:
        """Append `drafts` after the ops in `incoming`; returns the ops a consumer of the call waits for."""
        if not drafts:
            return incoming
        first = len(self.ops)
        for i, draft in enumerate(drafts):
            deps = incoming | {first + j for j in draft.after}
            label = name if len(drafts) == 1 else f"{name}.{i}"
            self.ops.append(replace(draft.op, name=label, path=path, deps=tuple(sorted(deps))))
        waited = {j for draft in drafts for j in draft.after}
        return frozenset(first + i for i in range(len(drafts)) if i not in waited)

    def skip(self, name: str) -> None:
        self._skipped[name] = None

    def workload(self) -> Workload:
        return Workload(tuple(self.ops), tuple(self._skipped))
