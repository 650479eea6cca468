"""hwmodel's import boundaries: torch only for extraction, never surgery, no hwcomponents."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import hwmodel

PACKAGE = Path(hwmodel.__file__).parent
# Modules that must import only pydantic, the standard library and each other.
PURE = set(
    "__init__ actions budget builder calls cost device digital gpu mapping presets pricing schedule traffic workload".split()
)
TORCH = {"analog", "dataflow", "encoding", "extract", "modules", "noise", "record", "recurrence", "tracking"}
STDLIB_AND_PYDANTIC = set(sys.stdlib_module_names) | {"pydantic", "hwmodel"}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_every_module_is_classified():
    assert {p.stem for p in PACKAGE.glob("*.py")} == PURE | TORCH


def test_pricing_modules_import_only_pydantic_and_the_stdlib():
    for stem in PURE:
        outside = _imports(PACKAGE / f"{stem}.py") - STDLIB_AND_PYDANTIC
        assert not outside, f"hwmodel/{stem}.py imports {outside}"


def test_no_module_imports_surgery_or_far_modules():
    for path in PACKAGE.glob("*.py"):
        assert not _imports(path) & {"surgery", "far_modules", "hwcomponents"}, path.name


SCRIPT = """
import sys
sys.modules["torch"] = None  # any import of torch now fails
import hwmodel
from hwmodel import Gemm, Product, Workload, estimate, get_device, get_gpu, roofline_total
work = Workload((Gemm(rows=64, cols=64, vectors=4), Product(m=4, k=64, n=4, deps=(0,))))
assert estimate(work, get_device("isaac"), policy="digital").total.energy_j > 0
assert roofline_total(work, get_gpu("h100")).latency_s > 0
try:
    hwmodel.extract_workload
except ImportError:
    print("lazy")
"""


@pytest.mark.slow
def test_hwmodel_prices_without_torch_and_loads_extraction_lazily():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "lazy"


def test_extraction_is_reachable_from_the_package():
    from hwmodel.extract import extract_workload
    from hwmodel.record import record_workload

    assert hwmodel.extract_workload is extract_workload and hwmodel.record_workload is record_workload
