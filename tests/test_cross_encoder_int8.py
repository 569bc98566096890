"""reranker.dtype=int8: the cross-encoder's linear layers as dynamic int8, on real SciFact BM25 pairs.

int8 rounds the activations per batch, so its scores move: they must rank each query's BM25 head
as fp32 does (per-query Spearman), differ from fp32's (int8 actually ran), and never share fp32's
cache entries. The head is untrained (conftest's ``untrained_cross_encoder``): its scores lie within
a few hundredths of each other, so int8's rounding reorders them more than a trained model's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from scipy.stats import spearmanr

from benchmarks.cross_encoder import bm25_pairs
from rankbench.harness.errors import ConfigError
from rankbench.rerankers.cross_encoder import CrossEncoder
from tests.conftest import SHARED_DATA

QUERIES, DEPTH = 4, 30


@pytest.fixture(scope="module")
def scores(untrained_cross_encoder: Path, tmp_path_factory) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(fp32 scores, int8 scores, qid of each pair) for BM25's top 30 of 4 SciFact test queries."""
    pairs, _, _ = bm25_pairs(QUERIES, DEPTH, str(SHARED_DATA), tmp_path_factory.mktemp("bm25"))
    fp32, int8 = (
        np.array(CrossEncoder(str(untrained_cross_encoder), max_length=256, dtype=d).score(pairs))
        for d in ("float32", "int8")
    )
    return fp32, int8, [q.qid for q, _ in pairs]


def test_every_linear_layer_runs_in_int8(untrained_cross_encoder: Path):
    model = CrossEncoder(str(untrained_cross_encoder), dtype="int8")
    kinds = {type(m) for m in model.model.modules()}
    assert torch.nn.Linear not in kinds and torch.ao.nn.quantized.dynamic.Linear in kinds
    assert model.dtype == torch.float32  # no autocast around the int8 products


def test_int8_ranks_each_bm25_head_like_fp32(scores):
    """Measured with this head on these pairs: per-query Spearman 0.88-0.91, max score change 0.011, where
    the fp32 scores span 0.03-0.06 per query. 0.8 leaves room for other CPUs' kernels and still catches a
    broken quantisation (rho near 0); a trained head, whose scores spread wider, moves less."""
    fp32, int8, qids = scores
    for qid in dict.fromkeys(qids):
        mask = np.array([q == qid for q in qids])
        assert spearmanr(fp32[mask], int8[mask]).statistic >= 0.8, qid
    assert np.abs(fp32 - int8).max() < 0.02  # the fp32 scores themselves span about 0.05 per query
    assert not np.array_equal(fp32, int8)


def test_int8_scores_never_share_fp32_cache_entries(untrained_cross_encoder: Path):
    cfg = OmegaConf.create({"model": str(untrained_cross_encoder), "dtype": "float32"})
    fp32 = CrossEncoder.cache_identity(cfg)
    int8 = CrossEncoder.cache_identity(OmegaConf.merge(cfg, {"dtype": "int8"}))
    assert int8["compute_dtype"] == "int8" and fp32["compute_dtype"] == "float32"
    assert int8["weights"] == fp32["weights"] and int8 != fp32


def test_an_unknown_dtype_names_the_setting(untrained_cross_encoder: Path):
    with pytest.raises(ConfigError, match=r"reranker\.dtype must be one of auto, float32, bfloat16, int8"):
        CrossEncoder.cache_identity(OmegaConf.create({"model": str(untrained_cross_encoder), "dtype": "int4"}))
