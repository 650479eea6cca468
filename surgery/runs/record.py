"""The surgery record: everything needed to rebuild a run's student from the timm model, as JSON.

Stored with the weights as `surgery.json` and inside every checkpoint.
`surgery.runs.replay` re-creates the student from it: the planned rewrite
again, then substitutes whose structure changed (pruning) rebuilt from their
`config()`, then the weights loaded strictly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from torch import nn

from far_modules import UnknownNameError, get_substitute
from surgery.errors import SurgeryError
from surgery.rewrite.adapters import SiteAdapter
from surgery.rewrite.plan import Step
from surgery.rewrite.select import Sparsity

RECORD_FORMAT = 1
"""Bumped whenever a record's shape changes; a run of another format is refused, never half-read."""


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
    source: str = field(default="surgery record", compare=False)
    """The file this record was read from, for error messages."""

    @classmethod
    def of(cls, student: nn.Module, steps: Iterable[Step], sparsity: Sparsity | None = None) -> SurgeryRecord:
        record = cls([SiteRecord(step.site.path, step.substitute, dict(step.params)) for step in steps], sparsity)
        record.update(student)
        return record

    def update(self, student: nn.Module) -> None:
        """Store each substitute's structure (its `config()`, for those that have one)."""
        for site in self.sites:
            substitute = _adapter(student, site.path, self.source).current_substitute()
            site.config = substitute.config() if hasattr(substitute, "config") else None

    def restructure(self, student: nn.Module) -> None:
        """Rebuild every substitute from its recorded config (weights to be loaded afterwards)."""
        for site in self.sites:
            if site.config is not None:
                adapter = _adapter(student, site.path, self.source)
                reference = next(adapter.current_substitute().parameters())
                try:
                    rebuilt = get_substitute(site.substitute).from_config(site.config)
                except (UnknownNameError, TypeError, ValueError, KeyError, RuntimeError) as error:
                    raise SurgeryError(f"{self.source}: site {site.path}: its recorded {site.substitute} config cannot be rebuilt (edited?): {error}") from error
                adapter.replace_substitute(rebuilt.to(device=reference.device, dtype=reference.dtype))

    def to_json(self) -> dict[str, Any]:
        sparsity = {"sparsity": self.sparsity} if self.sparsity is not None else {}
        return {"format": RECORD_FORMAT, "surgery": _version(), "sites": [site.to_json() for site in self.sites], **sparsity}

    @classmethod
    def from_json(cls, data: Any, source: str | Path = "surgery record") -> SurgeryRecord:
        """The record of `to_json`; another format or shape is a `SurgeryError` naming `source` and what is wrong.

        A record without `format` predates the field and has format 1's shape.
        """
        if not isinstance(data, Mapping):
            raise SurgeryError(f"{source}: expected a JSON object with the replaced sites, found {type(data).__name__}")
        if data.get("format", 1) != RECORD_FORMAT:
            raise SurgeryError(
                f"{source}: written by surgery {data.get('surgery', '?')} in record format {data.get('format')!r}; "
                f"this is surgery {_version()}, which reads format {RECORD_FORMAT}"
            )
        try:
            return cls([SiteRecord.from_json(site) for site in data["sites"]], data.get("sparsity"), str(source))
        except (KeyError, TypeError, AttributeError, ValueError) as error:
            raise SurgeryError(f"{source}: a surgery record without a valid {error} (edited, or written by another version?)") from error


def _adapter(student: nn.Module, path: str, source: str) -> SiteAdapter:
    try:
        module = student.get_submodule(path)
    except AttributeError as error:
        raise SurgeryError(f"{source}: names site {path}, which the rebuilt student does not have (edited?)") from error
    if not isinstance(module, SiteAdapter):
        raise SurgeryError(f"{source}: site {path} is no replaced site in the rebuilt student, but a {type(module).__name__} (edited?)")
    return module


def _version() -> str:
    try:
        return version("surgery")
    except PackageNotFoundError:  # a source tree on sys.path without an install
        return "unknown"
