"""The choices a latency measurement offers, apart from the code that measures (the CLI reads them without onnxruntime)."""

from __future__ import annotations

from typing import Literal

Precision = Literal["fp32", "int8"]
Optimization = Literal["disable", "basic", "extended", "all"]
