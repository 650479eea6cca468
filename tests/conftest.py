"""Test-wide setup: the tests import shared helpers (strategies, tiny recipes) from their folders."""

import sys
from pathlib import Path

for folder in (Path(__file__).parent, Path(__file__).parent / "runs"):
    sys.path.insert(0, str(folder))
