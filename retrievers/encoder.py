"""Bi-encoder inference: text -> one vector, as fast as this CPU allows without changing results.

Speed comes from doing less arithmetic, not from tricks that change the model: texts are
encoded in length-sorted batches (little padding), under ``torch.inference_mode``, and on
CPUs with AVX-512 bf16 the matrix products run in bfloat16 (``dtype=auto``), which keeps
cosine similarity to the fp32 vectors above 0.9999 and nDCG@10 within noise
(README: dense results).

CPUs without native bf16 (AVX2 only) have no such free lunch: fp32 is the floor there, and
``dtype=int8`` is the fast path (opt-in, since it changes the vectors more than bf16 does):
every linear layer runs as dynamic int8 (per-channel weights, activations quantised per
batch) through fbgemm, about 1.3x fp32 on AVX2. On SciFact it costs all-MiniLM-L6-v2 0.0004
nDCG@10 (docs/dense.md), though single vectors move further (cosine to fp32 about 0.97-0.98).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch

from rankbench.harness.compute import inference, length_sorted, model_dtype_name, prepare_model
from rankbench.harness.errors import ConfigError
from rankbench.harness.models import EncoderSpec

log = logging.getLogger(__name__)


class Encoder(Protocol):
    spec: EncoderSpec
    dim: int
    identity: dict  # what, besides the spec, decides the vectors (backend, compute dtype)

    def encode(self, texts: list[str], batch_size: int, desc: str) -> np.ndarray: ...


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """One vector per sequence from token states, ignoring padding."""
    if mode == "cls":
        return hidden[:, 0]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "mean":
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
    if mode == "max":
        return hidden.masked_fill(weights == 0, float("-inf")).amax(1)
    if mode == "lasttoken":
        last = mask.sum(1) - 1
        return hidden[torch.arange(hidden.shape[0]), last]
    raise ConfigError(f"retriever.pooling must be one of mean, cls, max, lasttoken, got {mode!r}")


def encode_sorted(
    texts: list[str], batch_size: int, forward: Callable[[list[str]], np.ndarray], desc: str
) -> np.ndarray:
    """``forward`` over length-sorted batches of texts, its vectors in input order (both encoders' path)."""
    return length_sorted([len(t) for t in texts], batch_size, lambda idx: forward([texts[i] for i in idx]), desc)


class TorchEncoder:
    """A Hugging Face encoder run by PyTorch, pooled and normalised as its spec says."""

    def __init__(self, spec: EncoderSpec, dtype: str = "auto", threads: int | None = None):
        from transformers import AutoModel, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        model_dtype_name(dtype, "retriever.dtype")  # a bad dtype is refused before the weights load
        self.spec = spec
        self.tokenizer = AutoTokenizer.from_pretrained(spec.folder)
        model = AutoModel.from_pretrained(spec.folder).eval()
        self.model, self.dtype, compute = prepare_model(model, dtype, "retriever.dtype")
        self.dim = int(self.model.config.hidden_size)
        self.identity = {"backend": "torch", "compute_dtype": compute}

    def encode(self, texts: list[str], batch_size: int, desc: str = "encode") -> np.ndarray:
        return encode_sorted(texts, batch_size, self._forward, desc)

    def _forward(self, texts: list[str]) -> np.ndarray:
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.spec.max_length, return_tensors="pt"
        )
        with inference(self.dtype):
            hidden = self.model(**batch).last_hidden_state
        vectors = pool(hidden.float(), batch["attention_mask"], self.spec.pooling)
        if self.spec.normalize:
            vectors = torch.nn.functional.normalize(vectors, dim=-1)
        return vectors.numpy()
