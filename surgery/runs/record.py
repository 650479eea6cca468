"""The surgery record: everything needed to rebuild a run's student from the timm model, as JSON.

Stored with the weights as `surgery.json` and inside every checkpoint. Replaying
it re-creates the timm model, redoes the planned rewrite, rebuilds substitutes
whose structure changed (pruning) from their `config()`, and loads weights strictly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from far_modules import get_substitute
from surgery.errors import SurgeryError
from surgery.rewrite.adapters import SiteAdapter


@dataclass
class SurgeryRecord:
    """Sites replaced, with what, and each substitute's current structure."""

    sites: list[dict[str, Any]] = field(default_factory=list)
    sparsity: dict[str, dict[str, float]] | None = None
    """The attention sparsity the selection was ranked by, so a replay selects the same sites without measuring."""

    @classmethod
    def of(cls, student: nn.Module, steps: list, sparsity: dict[str, dict[str, float]] | None = None) -> SurgeryRecord:
        sites = [{"path": s.site.path, "substitute": s.substitute, "params": s.params, "config": None} for s in steps]
        record = cls(sites, sparsity)
        record.update(student)
        return record

    def update(self, student: nn.Module) -> None:
        """Store each substitute's structure (its `config()`, for those that have one)."""
        for site in self.sites:
            substitute = _adapter(student, site["path"]).current_substitute()
            site["config"] = substitute.config() if hasattr(substitute, "config") else None

    def restructure(self, student: nn.Module) -> None:
        """Rebuild every substitute from its recorded config (weights to be loaded afterwards)."""
        for site in self.sites:
            if site["config"] is not None:
                adapter = _adapter(student, site["path"])
                reference = next(adapter.current_substitute().parameters())
                rebuilt = get_substitute(site["substitute"]).from_config(site["config"])
                adapter.replace_substitute(rebuilt.to(device=reference.device, dtype=reference.dtype))

    def to_json(self) -> dict[str, Any]:
        return {"sites": self.sites, **({"sparsity": self.sparsity} if self.sparsity is not None else {})}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SurgeryRecord:
        return cls(list(data["sites"]), data.get("sparsity"))


def _adapter(student: nn.Module, path: str) -> SiteAdapter:
    module = student.get_submodule(path)
    if not isinstance(module, SiteAdapter):
        raise SurgeryError(f"{path}: expected a replaced site, found {type(module).__name__}")
    return module
