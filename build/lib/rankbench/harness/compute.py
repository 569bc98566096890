"""CPU compute shared by the neural components: which dtype to run in, bf16 autocast, length-sorted batches.

Bi-encoders, cross-encoders, the LLM backend and the trainers must make these decisions alike:
``compute_dtype`` goes into their cache keys and ``training.json`` (as ``dtype_name``), so two
components that chose differently on the same CPU would never share results, and one copy that
drifted from another would silently change scores. They live here, below retrievers and rerankers,
so that neither imports the other for them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from rankbench.harness.errors import ConfigError

DTYPES = ("auto", "float32", "bfloat16")


def compute_dtype(requested: str) -> torch.dtype:
    """bf16 where the CPU does it natively (AVX-512 BF16/AMX), fp32 elsewhere."""
    if requested not in DTYPES:
        raise ConfigError(f"retriever.dtype must be one of {', '.join(DTYPES)}, got {requested!r}")
    if requested == "auto":
        return torch.bfloat16 if native_bf16() else torch.float32
    return torch.bfloat16 if requested == "bfloat16" else torch.float32


def dtype_name(dtype: torch.dtype) -> str:
    """``float32``/``bfloat16``: how cache identities and ``training.json`` record a compute dtype."""
    return str(dtype).removeprefix("torch.")


def native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether bf16 matrix products run natively here (``cpuinfo``: /proc/cpuinfo's text, read when None).

    Only then does ``auto`` pick bf16: elsewhere (AVX2) oneDNN emulates it, slower than fp32.
    """
    cpuinfo = _cpuinfo() if cpuinfo is None else cpuinfo
    return torch.backends.mkldnn.is_available() and ("avx512_bf16" in cpuinfo or "amx_bf16" in cpuinfo)


@functools.cache
def _cpuinfo() -> str:
    """/proc/cpuinfo, read once per process (every encoder and cross-encoder hash asks)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def autocast(dtype: torch.dtype) -> torch.autocast:
    """bf16 autocast on the CPU when ``dtype`` is bf16; a context that changes nothing otherwise.

    Autocast rather than converting the weights: the parameters stay fp32 (training updates them in
    fp32, and the saved weights do not depend on the CPU), only the matrix products run in bf16.
    """
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)


@contextmanager
def inference(dtype: torch.dtype) -> Iterator[None]:
    """``torch.inference_mode`` under ``autocast(dtype)``: every forward pass that is not training."""
    with torch.inference_mode(), autocast(dtype):
        yield


def length_sorted(
    lengths: Sequence[int],
    batch_size: int,
    forward: Callable[[list[int]], np.ndarray],
    desc: str | None = None,
) -> np.ndarray:
    """``forward`` over batches of indices sorted by length, its float32 rows back in input order.

    Sorting keeps padding small (a batch pads to its longest member); longest first, so memory peaks
    on the first batch rather than late in a long job. ``desc`` names a progress bar (none when None).
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    out: np.ndarray | None = None
    with tqdm(total=len(lengths), unit="text", desc=desc, disable=desc is None or len(lengths) < batch_size) as bar:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            rows = forward(idx)
            if out is None:
                out = np.empty((len(lengths), *rows.shape[1:]), dtype=np.float32)
            out[idx] = rows
            bar.update(len(idx))
    return out if out is not None else np.empty((0, 0), dtype=np.float32)
