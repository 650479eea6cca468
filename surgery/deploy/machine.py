"""Where a latency was measured: the CPU's model name and its widest vector ISA, beside ONNX Runtime's version.

Latency ratios between models move with the CPU's vector width (AVX2 against
AVX-512, VNNI for int8), so every benchmark prints these beside its figures.
"""

from __future__ import annotations

import platform
from pathlib import Path

import onnxruntime as ort
import torch


def machine() -> dict[str, str]:
    """Where the latencies were measured: the CPU's model name, its widest vector ISA, and ONNX Runtime's version.

    Example:
        >>> machine()  # doctest: +SKIP
        {'cpu': 'AMD EPYC', 'isa': 'AVX-512 (VNNI, BF16)', 'onnxruntime': '1.23.2'}
    """
    info = _cpuinfo()
    name = info.get("model name") or platform.processor() or platform.machine()
    return {"cpu": name, "isa": vector_isa(set((info.get("flags") or info.get("Features") or "").split())), "onnxruntime": ort.__version__}


_ISAS = (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"), ("sse4_2", "SSE4.2"), ("sve", "SVE"), ("asimd", "NEON"))
_EXTENSIONS = (("VNNI", ("avx512_vnni", "avx_vnni")), ("BF16", ("avx512_bf16",)), ("AMX", ("amx_int8",)), ("dot product", ("asimddp",)))


def vector_isa(flags: set[str]) -> str:
    """The widest SIMD ISA among the CPU's `flags` (/proc/cpuinfo), with the int8/bf16 extensions ONNX Runtime uses;
    where the flags are not readable, what PyTorch's kernels dispatch to.

    Example:
        >>> vector_isa({"sse4_2", "avx", "avx2", "avx512f", "avx512_vnni"})
        'AVX-512 (VNNI)'
    """
    isa = next((name for flag, name in _ISAS if flag in flags), None)
    if isa is None:
        return torch.backends.cpu.get_cpu_capability()
    extensions = [name for name, names in _EXTENSIONS if flags & set(names)]
    return f"{isa} ({', '.join(extensions)})" if extensions else isa


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (Linux); empty elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields
