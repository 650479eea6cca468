"""The surgery record: everything needed to rebuild a run's student from the timm model, as JSON.

Stored with the weights as `surgery.json` and inside every checkpoint.
`surgery.runs.replay` re-creates the student from it: the planned rewrite
again, then substitutes whose structure changed (pruning) rebuilt from their
`config()`, then the weights loaded strictly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from far_modules import get_substitute
from surgery.errors import SurgeryError
from surgery.rewrite.adapters import SiteAdapter
from surgery.rewrite.plan import Step
from surgery.rewrite.select import Sparsity


@dataclass
class SiteRecord:
    """One replaced site: where, with which substitute and options, and the substitute's current structure."""

    path: str
    substitute: str
    params: dict[str, Any]
    config: dict[str, Any] | None = None
    """The substitute's `config()` (None for substitutes without one): what a pruned structure is rebuilt from."""

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "substitute": self.substitute, "params": self.params, "config": self.config}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SiteRecord:
        return cls(data["path"], data["substitute"], dict(data["params"]), data["config"])


@dataclass
class SurgeryRecord:
    """Sites replaced, with what, and each substitute's current structure."""

    sites: list[SiteRecord] = field(default_factory=list)
    sparsity: Sparsity | None = None
    """The attention sparsity the selection was ranked by, so a replay selects the same sites without measuring."""

    @classmethod
    def of(cls, student: nn.Module, steps: Iterable[Step], sparsity: Sparsity | None = None) -> SurgeryRecord:
        record = cls([SiteRecord(step.site.path, step.substitute, dict(step.params)) for step in steps], sparsity)
        record.update(student)
        return record

    def update(self, student: nn.Module) -> None:
        """Store each substitute's structure (its `config()`, for those that have one)."""
        for site in self.sites:
            substitute = _adapter(student, site.path).current_substitute()
            site.config = substitute.config() if hasattr(substitute, "config") else None

    def restructure(self, student: nn.Module) -> None:
        """Rebuild every substitute from its recorded config (weights to be loaded afterwards)."""
        for site in self.sites:
            if site.config is not None:
                adapter = _adapter(student, site.path)
                reference = next(adapter.current_substitute().parameters())
                rebuilt = get_substitute(site.substitute).from_config(site.config)
                adapter.replace_substitute(rebuilt.to(device=reference.device, dtype=reference.dtype))

    def to_json(self) -> dict[str, Any]:
        return {"sites": [site.to_json() for site in self.sites], **({"sparsity": self.sparsity} if self.sparsity is not None else {})}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SurgeryRecord:
        """The record of `to_json`; a record of another shape is a `SurgeryError` naming the missing key."""
        try:
            return cls([SiteRecord.from_json(site) for site in data["sites"]], data.get("sparsity"))
        except (KeyError, TypeError) as error:
            raise SurgeryError(f"surgery record without {error} (written by another version?)") from error


def _adapter(student: nn.Module, path: str) -> SiteAdapter:
    module = student.get_submodule(path)
    if not isinstance(module, SiteAdapter):
        raise SurgeryError(f"{path}: expected a replaced site, found {type(module).__name__}")
    return module
