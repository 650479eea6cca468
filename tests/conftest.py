"""Fixtures for every folder: the tiny digits run, trained once a session, and private copies of it to write into.

The fixtures import surgery (so torch) and tests.tiny (so PyYAML) when first used, not at the top: .ci/run's
torch-free job loads this file too, to run hwmodel's tests on an interpreter that has neither.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from surgery.runs import RunDir


@dataclass(frozen=True)
class FinishedRun:
    """The tiny digits recipe file (`tests.tiny.recipe_data(trained=True)`) and the run applied from it."""

    recipe: Path
    run: RunDir


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> FinishedRun:
    """One run shared by every test that only reads a finished run; a test that writes into it takes `run_copy`."""
    from surgery.recipe import load_recipe
    from surgery.runs import apply_recipe
    from tests.tiny import recipe_data, write_recipe

    root = tmp_path_factory.mktemp("finished-run")
    recipe = write_recipe(root, recipe_data(trained=True))
    return FinishedRun(recipe, apply_recipe(load_recipe(recipe), root / "run"))


@pytest.fixture
def run_copy(finished_run: FinishedRun, tmp_path: Path) -> RunDir:
    """A copy of the finished run in the test's own folder."""
    from surgery.runs import RunDir

    return RunDir(shutil.copytree(finished_run.run.root, tmp_path / "run"))
