"""Tests of whole runs: `surgery apply` end to end, resume after a kill, sparsity-selected sites, DDP, bad input."""
