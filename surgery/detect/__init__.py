"""Detect: attention sites found by dataflow, the contract of each site's call, inline regions, attention sparsity."""

from surgery.detect.contracts import ContractError, SiteContract, read_contract
from surgery.detect.regions import InlineAttentionError, attention_region
from surgery.detect.sites import Site, find_sites
from surgery.detect.sparsity import METRICS, SiteSparsity, attention_sparsity, measure_sites

__all__ = [
    "METRICS",
    "ContractError",
    "InlineAttentionError",
    "Site",
    "SiteContract",
    "SiteSparsity",
    "attention_region",
    "attention_sparsity",
    "find_sites",
    "measure_sites",
    "read_contract",
]
