"""The one pydantic base every recipe section derives from."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Frozen, refuses unknown keys, and turns each field's docstring into its JSON-Schema description."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)
