"""What the CLI golden tests share: one runner for the `surgery` app."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner, Result

from surgery.cli import app

runner = CliRunner()


def invoke(*args: str | Path) -> Result:
    return runner.invoke(app, [str(arg) for arg in args])
