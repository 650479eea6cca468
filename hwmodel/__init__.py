"""Analytical ReRAM crossbar cost model and GPU roofline baseline (see issue 5; not built yet)."""

__all__: list[str] = []
