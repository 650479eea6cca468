"""The runnable examples in hwmodel's docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["hwmodel", "hwmodel.workload", "hwmodel.presets", "hwmodel.schedule", "hwmodel.extract", "hwmodel.record", "hwmodel.tracking", "hwmodel.noise", "hwmodel.analog"])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
