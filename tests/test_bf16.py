"""bf16 where the CPU does it natively, fp32 elsewhere: every machine runs and asserts the branch it has.

``dtype=auto`` depends on the CPU (AVX-512 BF16/AMX or not), so each test of it checks both what
``auto`` resolved to and the numbers it gave: close to fp32 (but not fp32's) where bf16 ran, fp32's
own bits where it fell back. The detection itself is checked on fixed /proc/cpuinfo lines, and an
explicit ``dtype=bfloat16`` (emulated without native support) keeps the bf16 numerics covered
on every machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from rankbench.harness.compute import native_bf16
from rankbench.harness.models import encoder_spec, resolve_model
from rankbench.harness.types import Doc, Query
from rankbench.rerankers.cross_encoder import CrossEncoder
from rankbench.retrievers.encoder import TorchEncoder

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
TEXTS = [
    "Goldfish grow as large as their tank allows.",
    "Wifi and bluetooth are wireless radio standards.",
    "Cats sleep for most of the day, often sixteen hours.",
    "how large do goldfish grow",
    "Tomatoes grow best in warm sunny gardens with water and plenty of light.",
]
# Flag lines as /proc/cpuinfo prints them, shortened: AVX2 only (this project's AMD EPYC machines),
# AVX-512 with BF16, and AMX (of which only the amx flags are kept).
AVX2 = "flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2 sha_ni vaes vpclmulqdq rdpid fsrm\n"
AVX512_BF16 = "flags\t\t: fpu sse2 avx avx2 avx512f avx512dq avx512bw avx512vl avx512_bf16 avx512_vnni\n"
AMX = "flags\t\t: fpu sse2 avx avx2 avx512f avx512bw amx_bf16 amx_tile amx_int8\n"


def assert_bf16_vectors(vectors: np.ndarray, fp32: np.ndarray) -> None:
    """bf16's numbers: near fp32's, yet not fp32's own (which would mean bf16 never ran)."""
    cos = (vectors * fp32).sum(1) / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(fp32, axis=1))
    assert cos.min() > 0.99
    assert not np.array_equal(vectors, fp32)


def assert_bf16_scores(scores: np.ndarray, fp32: np.ndarray) -> None:
    """As above, for the untrained head's logits (all within 0.02-0.07 here): bf16 moved them by ~2e-4."""
    assert np.abs(scores - fp32).max() < 2e-3
    assert not np.array_equal(scores, fp32)


@pytest.fixture(scope="module")
def fp32_vectors() -> np.ndarray:
    return TorchEncoder(encoder_spec(MINILM), dtype="float32").encode(TEXTS, batch_size=2)


@pytest.fixture(scope="module")
def cross_encoder_folder(tmp_path_factory) -> Path:
    """MiniLM with a seeded, untrained 1-logit head: a real cross-encoder folder in seconds."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder, base = tmp_path_factory.mktemp("ce"), resolve_model(MINILM)
    torch.manual_seed(13)
    AutoModelForSequenceClassification.from_pretrained(base, num_labels=1).save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    return folder


def test_detection_reads_the_cpu_flags():
    assert not native_bf16(AVX2)
    assert native_bf16(AVX512_BF16) and native_bf16(AMX)
    assert not native_bf16("")


def test_explicit_bfloat16_stays_close_to_float32_on_any_cpu(fp32_vectors: np.ndarray):
    encoder = TorchEncoder(encoder_spec(MINILM), dtype="bfloat16")
    assert encoder.identity["compute_dtype"] == "bfloat16"
    assert_bf16_vectors(encoder.encode(TEXTS, batch_size=2), fp32_vectors)


def test_auto_encodes_in_bf16_only_where_the_cpu_has_it(fp32_vectors: np.ndarray):
    encoder = TorchEncoder(encoder_spec(MINILM), dtype="auto")
    vectors = encoder.encode(TEXTS, batch_size=2)
    if native_bf16():
        assert encoder.dtype == torch.bfloat16 and encoder.identity["compute_dtype"] == "bfloat16"
        assert_bf16_vectors(vectors, fp32_vectors)
    else:
        assert encoder.dtype == torch.float32 and encoder.identity["compute_dtype"] == "float32"
        assert np.array_equal(vectors, fp32_vectors)  # the fp32 path itself, not an approximation of it


def test_auto_scores_pairs_in_bf16_only_where_the_cpu_has_it(cross_encoder_folder: Path):
    pairs = [(Query("q", TEXTS[3]), Doc(f"d{i}", "", text)) for i, text in enumerate(TEXTS)]
    fp32 = np.array(CrossEncoder(str(cross_encoder_folder), dtype="float32").score(pairs))
    assert_bf16_scores(np.array(CrossEncoder(str(cross_encoder_folder), dtype="bfloat16").score(pairs)), fp32)
    auto = CrossEncoder(str(cross_encoder_folder), dtype="auto")
    scores = np.array(auto.score(pairs))
    identity = CrossEncoder.cache_identity(OmegaConf.create({"model": str(cross_encoder_folder)}))
    if native_bf16():
        assert auto.dtype == torch.bfloat16 and identity["compute_dtype"] == "bfloat16"
        assert_bf16_scores(scores, fp32)
    else:
        assert auto.dtype == torch.float32 and identity["compute_dtype"] == "float32"
        assert np.array_equal(scores, fp32)
