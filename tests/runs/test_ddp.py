"""torchrun with 2 gloo processes on CPU: after every step both replicas hold identical weights."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("ddp_worker.py")


@pytest.mark.slow
def test_two_gloo_replicas_stay_identical(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(WORKER), str(tmp_path)]
    subprocess.run(command, check=True, timeout=300)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(rank["world"] == 2 for rank in ranks)
    digests = ranks[0]["digests"]
    assert len(digests) == 96 // 16 and digests == ranks[1]["digests"]
    assert all(all(step) for step in digests)
