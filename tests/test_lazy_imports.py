"""The CLI's entry point and the recipe schema load without torch; the public names still resolve on first use."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import surgery
import surgery.data
import surgery.deploy
import surgery.measure
import surgery.runs

HEAVY = ("torch", "timm", "onnxruntime", "sklearn", "transformers", "matplotlib", "far_modules")


@pytest.mark.slow
@pytest.mark.parametrize(
    "code",
    [
        "import surgery.cli",  # what `surgery --help` loads
        "from surgery.recipe import recipe_json_schema_text; recipe_json_schema_text()",  # `surgery schema`
        "from surgery.recipe import dump_recipe, load_recipe; dump_recipe(load_recipe('recipes/deit_far.yaml'))",
        "import surgery; surgery.load_recipe",
    ],
)
def test_the_light_paths_load_no_heavy_package(code: str) -> None:
    probe = f"import sys; {code}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "", f"{code} loaded {loaded}"


@pytest.mark.parametrize("package", [surgery, surgery.data, surgery.deploy, surgery.measure, surgery.runs], ids=lambda p: p.__name__)
def test_every_public_name_resolves_to_the_object_its_module_defines(package) -> None:
    for name in package.__all__:
        value = getattr(package, name)
        assert getattr(importlib.import_module(value.__module__), name) is value, f"{package.__name__}.{name}"
    assert set(package.__all__) <= set(dir(package))
    with pytest.raises(AttributeError, match="has no attribute 'nonexistent'"):
        package.nonexistent
