"""The recipe's `search` section: which sites to search, what may replace each, and the cost budget to meet.

Only the schema lives here. Whether each candidate names a registered substitute (and takes its params) is
checked with the rewrites' names by `check_recipe`, so that reading a recipe stays free of torch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Discriminator, Field, JsonValue, Tag, WithJsonSchema, field_validator, model_serializer, model_validator

from surgery.recipe.selector import Selector
from surgery.recipe.strict import StrictModel

Metric = Literal["energy", "reram_latency", "cpu_latency", "params", "macs"]
"""A cost a budget may bound: ReRAM energy (J), ReRAM latency (s), CPU latency (s), parameters, multiply-accumulates."""
METRICS: tuple[Metric, ...] = ("energy", "reram_latency", "cpu_latency", "params", "macs")
METRIC_UNITS: dict[Metric, tuple[str, float]] = {
    "energy": ("µJ", 1e6), "reram_latency": ("µs", 1e6), "cpu_latency": ("ms", 1e3), "params": ("M", 1e-6), "macs": ("M", 1e-6),
}
"""How reports show each metric: (unit, factor from the SI amount)."""

_RATIO = re.compile(r"^\s*([^\s]+?)\s*x\s*$")


class Limit(StrictModel):
    """One budget: an absolute amount in the metric's unit, or a ratio of the teacher's cost (written "0.8x")."""

    value: float = Field(gt=0, allow_inf_nan=False)
    """The amount, or the ratio when relative."""
    relative: bool = False
    """Whether value multiplies the teacher's cost."""

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, written: Any) -> Any:
        """A YAML number or "0.8x" string becomes value and relative; a mapping is taken as it is."""
        if isinstance(written, Mapping):
            return written
        ratio = _RATIO.match(written) if isinstance(written, str) else None
        return {"value": _positive(ratio[1] if ratio else written), "relative": ratio is not None}

    @model_serializer
    def _as_written(self) -> float | str:
        """Dumped as the YAML that reads back to it: 5000000.0 or "0.8x"."""
        return f"{self.value!r}x" if self.relative else self.value

    def resolve(self, teacher: float) -> float:
        """The amount this limit allows, given the teacher's cost in the same metric."""
        return self.value * teacher if self.relative else self.value


def _positive(written: Any) -> float:
    try:
        number = float(written) if not isinstance(written, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise ValueError("expected a positive number, or a positive ratio of the teacher's cost written like '0.8x'")
    return number


LimitValue = Annotated[
    Limit,
    WithJsonSchema({"anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "string", "pattern": r"^\s*[0-9.eE+-]+\s*x\s*$"}]}),
]


class Budget(StrictModel):
    """Upper bounds on the searched model's cost; each is a number in the metric's unit or a ratio of the teacher's ("0.8x")."""

    energy: LimitValue | None = None
    """ReRAM energy per inference, in joules (the `hardware` section's device)."""
    reram_latency: LimitValue | None = None
    """ReRAM latency per inference, in seconds."""
    cpu_latency: LimitValue | None = None
    """CPU latency per inference, in seconds (ONNX Runtime, batch 1, one thread)."""
    params: LimitValue | None = None
    """Parameters."""
    macs: LimitValue | None = None
    """Multiply-accumulates per inference."""

    @model_validator(mode="after")
    def _something_bounded(self) -> Budget:
        if not self.limits():
            raise ValueError(f"give at least one limit: {', '.join(METRICS)}")
        return self

    def limits(self) -> dict[Metric, Limit]:
        """The limits given, in metric order."""
        return {metric: limit for metric in METRICS if (limit := getattr(self, metric)) is not None}

    def resolve(self, teacher: Mapping[Metric, float]) -> dict[Metric, float]:
        """Absolute amounts, ratios taken of the teacher's cost in each metric."""
        return {metric: limit.resolve(teacher[metric]) for metric, limit in self.limits().items()}


KeepRatio = Annotated[float, Field(gt=0, le=1)]


class Substitution(StrictModel):
    """Replace the site with a registered substitute."""

    substitute: str
    """Registered substitute name."""
    params: dict[str, JsonValue] = {}
    """Keyword options of the substitute's from_site."""
    keep_ratios: list[KeepRatio] | None = Field(None, min_length=1)
    """Shares of hidden units kept, each searched as its own option (prunable substitutes); none keeps them all."""

    @field_validator("keep_ratios")
    @classmethod
    def _distinct_ratios(cls, ratios: list[float] | None) -> list[float] | None:
        if ratios is not None and len(set(ratios)) < len(ratios):
            raise ValueError(f"each keep ratio once, got {ratios}")
        return ratios


def _word_is_keep(written: Any) -> Any:
    """A plain word may only be keep: a substitute is written as a mapping, which can carry its params."""
    if written != "keep" and not isinstance(written, Mapping):
        raise ValueError(f"expected keep or a mapping such as {{substitute: {written if isinstance(written, str) else 'conv'}}}")
    return written


Candidate = Annotated[
    Annotated[Literal["keep"], Tag("keep")] | Annotated[Substitution, Tag("substitution")],
    Discriminator(lambda written: "keep" if isinstance(written, str) else "substitution"),
    BeforeValidator(_word_is_keep),
]
"""What may stand at a searched site: keep (the attention stays), or a substitution."""


class PredictorSpec(StrictModel):
    """The quality predictor: a short teacher-forced distillation of each candidate at each site alone."""

    steps: int = Field(200, ge=1)
    """Optimiser steps per candidate (all its sites at once): enough for a substitute drawn at random to leave its
    initialisation behind, or the score measures the draw (at 50 on the quickstart every substitute scores alike)."""
    batch_size: int = Field(64, ge=1)
    """Examples per step."""
    lr: float = Field(2e-3, gt=0)
    """Learning rate (constant)."""
    finetune_steps: int = Field(150, ge=1)
    """Steps each distilled uniform student (and the teacher, for reference) is then finetuned on the task loss (`task` score)."""
    finetune_lr: float = Field(5e-4, gt=0)
    """Learning rate of that finetune (constant)."""
    score: Literal["task", "output_kl", "block_error"] = "task"
    """What a site's loss is: its share of the option's task loss after the short distill and finetune, against the
    teacher's (`task`); the divergence of the model's output with that site alone replaced (`output_kl`: KL of the
    class distributions, 1 - cosine of a text encoder's embedding); or its block output's relative squared error."""
    eval_batches: int = Field(16, ge=1)
    """Validation batches (of batch_size) each score is measured on."""


class Search(StrictModel):
    """Choose per site what replaces attention, for the lowest predicted loss within a cost budget.

    `surgery search` writes the chosen mix as a plain recipe, with one rewrite per replaced site.
    """

    select: Selector = Selector()
    """The sites searched; the others stay attention."""
    candidates: list[Candidate] = Field(min_length=1)
    """What each searched site may become: keep, or {substitute: NAME, params: {...}, keep_ratios: [...]}."""
    budget: Budget
    """The cost the searched model may not exceed."""
    axis: Metric | None = None
    """The cost the Pareto front is drawn against; none: the first budgeted, in the order energy, reram_latency,
    cpu_latency, params, macs."""
    predictor: PredictorSpec = PredictorSpec()
    """How each candidate's loss at each site is predicted."""

    @property
    def front_axis(self) -> Metric:
        return self.axis or next(iter(self.budget.limits()))

    @field_validator("candidates")
    @classmethod
    def _distinct(cls, candidates: list[str | Substitution]) -> list[str | Substitution]:
        for index, candidate in enumerate(candidates):
            if candidate in candidates[:index]:
                raise ValueError(f"candidate {index} repeats candidate {candidates.index(candidate)}; give each once")
        return candidates
