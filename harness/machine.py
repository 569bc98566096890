"""The CPU a number was measured on: its model and the vector flags that decide kernel speed.

Machines here differ between sessions (AVX2 only, AVX-512, AVX-512 BF16 or AMX), and so do speeds,
bf16's availability and the dtype ``auto`` picks. Benchmarks, training records and the reproduction
matrix record it the same way, from this module.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path
from typing import Any


@functools.cache
def cpuinfo() -> str:
    """/proc/cpuinfo, read once per process (every encoder and cross-encoder hash asks)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu(text: str | None = None) -> dict[str, Any]:
    """The CPU model and its AVX2/AVX-512/AMX flags (``text``: /proc/cpuinfo's, read when None)."""
    text = cpuinfo() if text is None else text
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}  # later processors repeat the first's fields
    flags = fields.get("flags", "").split()
    vector = sorted(f for f in flags if f == "avx2" or f.startswith(("avx512", "amx")))
    return {"cpu": fields.get("model name") or platform.processor() or platform.machine(), "cpu_flags": vector}


def cpu_kind(flags: list[str]) -> str:
    """The class of CPU a speed depends on: ``avx512_bf16`` (native bf16, incl. AMX), ``avx512``, ``avx2`` or ``other``.

    Speeds differ by kind, not by model name, so reports are kept per kind side by side.
    """
    if {"avx512_bf16", "amx_bf16"} & set(flags):
        return "avx512_bf16"
    return "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "other"
