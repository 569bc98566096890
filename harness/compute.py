"""CPU compute shared by the neural components: which dtype to run in, bf16 autocast, int8, length-sorted batches.

Bi-encoders, cross-encoders, the LLM backend and the trainers must make these decisions alike:
``compute_dtype`` goes into their cache keys and ``training.json`` (as ``dtype_name``), so two
components that chose differently on the same CPU would never share results, and one copy that
drifted from another would silently change scores. They live here, below retrievers and rerankers,
so that neither imports the other for them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from tqdm import tqdm

from rankbench.harness import machine
from rankbench.harness.errors import ConfigError

DTYPES = ("auto", "float32", "bfloat16")
INT8 = "int8"
MODEL_DTYPES = (*DTYPES, INT8)  # encoders and cross-encoders: int8 quantises their linear layers


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
    cpuinfo = machine.cpuinfo() if cpuinfo is None else cpuinfo
    return torch.backends.mkldnn.is_available() and ("avx512_bf16" in cpuinfo or "amx_bf16" in cpuinfo)


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with every ``nn.Linear`` as a dynamic int8 linear layer (per-channel weight scales).

    Per-channel weights keep the error to the activations' per-batch rounding: per-tensor weight
    scales cost all-MiniLM-L6-v2 a further 0.06 of mean cosine to fp32 in our measurements.
    """
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's deprecation notice for quantized tensors, once per layer
        return quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)


def model_dtype_name(requested: str, setting: str) -> str:
    """What a cache identity records for ``requested``: ``int8``, or the float dtype ``compute_dtype`` picks.

    Known without loading the model, so that a run's config hash can include it. ``setting`` names the
    config key in the error (``retriever.dtype``, ``reranker.dtype``).
    """
    if requested not in MODEL_DTYPES:
        raise ConfigError(f"{setting} must be one of {', '.join(MODEL_DTYPES)}, got {requested!r}")
    return INT8 if requested == INT8 else dtype_name(compute_dtype(requested))


def prepare_model(model: torch.nn.Module, requested: str, setting: str) -> tuple[torch.nn.Module, torch.dtype, str]:
    """(the model to run, the autocast dtype around it, ``model_dtype_name``) for ``requested``.

    int8 replaces the linear layers and keeps the activations float32 around the int8 products, so it
    runs without autocast; the float dtypes keep the fp32 weights and autocast where bf16 was chosen.
    """
    name = model_dtype_name(requested, setting)
    if name == INT8:
        return quantize_int8(model), torch.float32, name
    return model, compute_dtype(requested), name


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
