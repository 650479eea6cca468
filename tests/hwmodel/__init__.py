"""Tests of hwmodel, the hardware cost model; most of them run without torch (see .ci/run)."""
