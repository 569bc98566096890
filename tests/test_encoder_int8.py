"""dtype=int8: the bi-encoder's linear layers as dynamic int8, on any x86 CPU (fbgemm runs on AVX2).

The vectors move (per-batch activation rounding), so they must stay near fp32's, rank like
fp32's on a clear-cut query, differ from fp32's (int8 actually ran), and never share fp32's
embedding cache entry.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rankbench.harness.embeddings import embeddings_key
from rankbench.harness.errors import ConfigError
from rankbench.harness.models import encoder_spec
from rankbench.retrievers.encoder import TorchEncoder
from tests.test_bf16 import MINILM, TEXTS


@pytest.fixture(scope="module")
def encoders() -> tuple[TorchEncoder, TorchEncoder]:
    spec = encoder_spec(MINILM)
    return TorchEncoder(spec, dtype="float32"), TorchEncoder(spec, dtype="int8")


def test_every_linear_layer_runs_in_int8(encoders):
    _, int8 = encoders
    assert int8.identity == {"backend": "torch", "compute_dtype": "int8"}
    kinds = {type(m) for m in int8.model.modules()}
    assert torch.nn.Linear not in kinds
    assert torch.ao.nn.quantized.dynamic.Linear in kinds


def test_int8_vectors_stay_near_fp32_and_rank_alike(encoders):
    fp32, int8 = (e.encode(TEXTS, batch_size=2) for e in encoders)
    cos = (fp32 * int8).sum(1) / (np.linalg.norm(fp32, axis=1) * np.linalg.norm(int8, axis=1))
    assert cos.min() > 0.95
    assert not np.array_equal(fp32, int8)
    query, docs = 3, [0, 1, 2, 4]  # "how large do goldfish grow" against the other texts
    assert docs[int(np.argmax(int8[docs] @ int8[query]))] == 0 == docs[int(np.argmax(fp32[docs] @ fp32[query]))]


def test_int8_embeddings_never_share_fp32_cache_entries(encoders, tiny_beir):
    from rankbench.harness.datasets import load_dataset

    corpus = load_dataset({"name": "tiny", "path": str(tiny_beir), "split": "test"}, None).corpus
    fp32, int8 = (embeddings_key(e, corpus, "float16") for e in encoders)
    assert fp32 != int8 and int8["compute_dtype"] == "int8"


def test_an_unknown_dtype_names_the_setting():
    with pytest.raises(ConfigError, match=r"retriever\.dtype must be one of auto, float32, bfloat16, int8"):
        TorchEncoder(encoder_spec(MINILM), dtype="int4")
