"""faiss index types of the dense retriever against exact search, on seeded vectors.

The vectors stand in for embeddings (the index does not care where they came from); every
index is the real faiss one, built the way ``Dense.index`` builds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from harness.errors import ConfigError
from retrievers.dense import Dense

N, D = 4000, 64


@dataclass
class _Vectors:
    """Just the data Dense reads off an Embeddings entry."""

    vectors: np.ndarray
    folder: Path


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    rng = np.random.default_rng(3)
    centers = rng.normal(size=(40, D))
    x = centers[rng.integers(0, 40, N)] + 0.3 * rng.normal(size=(N, D))  # clustered, as embeddings are
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)


def _index(kind: str, vectors: np.ndarray, tmp_path: Path, **params):
    dense = Dense(index=kind, **params)
    dense.embeddings = _Vectors(vectors, tmp_path / "embeddings-entry")
    if kind in ("flat", "flat_fp16"):
        return dense, dense._filled(dense._empty_index())
    return dense, dense._searching(dense._cached_index(tmp_path))


def _recall(index, exact, queries: np.ndarray, k: int = 100) -> float:
    _, found = index.search(queries, k)
    _, truth = exact.search(queries, k)
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, truth, strict=True)]))


@pytest.mark.parametrize(
    ("kind", "params", "least"),
    [
        ("flat_fp16", {}, 0.99),
        ("hnsw", {"hnsw": {"m": 16, "ef_construction": 100, "ef_search": 200}}, 0.95),
        ("ivf", {"ivf": {"nlist": 32, "nprobe": 32, "train_size": 4000}}, 0.999),  # every cell: exhaustive
        ("ivf", {"ivf": {"nlist": 32, "nprobe": 8, "train_size": 4000}}, 0.9),
        ("ivfpq", {"ivf": {"nlist": 32, "nprobe": 32, "train_size": 4000}, "pq": {"m": 16, "bits": 8}}, 0.6),
    ],
)
def test_recall_at_100_against_exact_search(vectors, tmp_path: Path, kind: str, params: dict, least: float):
    _, exact = _index("flat", vectors, tmp_path)
    _, index = _index(kind, vectors, tmp_path, **params)
    queries = vectors[::40].astype(np.float32)
    assert index.ntotal == N
    assert _recall(index, exact, queries) >= least


def test_trained_index_is_cached_and_settings_name_it(vectors, tmp_path: Path):
    from harness import cache

    params = {"ivf": {"nlist": 16, "nprobe": 4, "train_size": 1000}, "pq": {"m": 8, "bits": 6}}
    with cache.tally() as first:
        dense, _ = _index("ivfpq", vectors, tmp_path, **params)
    with cache.tally() as second:
        _index("ivfpq", vectors, tmp_path, **{**params, "ivf": {**params["ivf"], "nprobe": 16}})
    assert dict(first["faiss"]) == {"built": 1} and dict(second["faiss"]) == {"hit": 1}  # nprobe: search only
    assert dense.index_settings() == {"index": "ivfpq", "nlist": 16, "train_size": 1000, "pq_m": 8, "pq_bits": 6}


def test_bad_pq_settings_name_the_key(vectors, tmp_path: Path):
    with pytest.raises(ConfigError, match=r"retriever\.pq\.m=7 must divide the embedding dimension 64"):
        _index("ivfpq", vectors, tmp_path, pq={"m": 7})
    with pytest.raises(ConfigError, match=r"retriever\.index=ivfpq trains 2\^pq\.bits=256 centroids"):
        _index("ivfpq", vectors[:100], tmp_path, pq={"m": 8})


def test_leaderboard_column_names_the_index_and_its_parameters():
    from hydra import compose, initialize_config_dir

    from harness.stages import row_columns

    conf = str(Path(__file__).resolve().parents[1] / "conf")
    with initialize_config_dir(config_dir=conf, version_base="1.3"):
        exact = compose("config", overrides=["retriever=dense"])
        pq = compose("config", overrides=["retriever=dense", "retriever.index=ivfpq", "retriever.ivf.nprobe=64"])
        bm25 = compose("config", overrides=["retriever=bm25"])
    assert row_columns(exact.retriever) == {"retriever_index": "flat"}
    columns = row_columns(pq.retriever)["retriever_index"]
    assert columns == "ivfpq nlist=1024 nprobe=64 train_size=100000 pq.m=48 pq.bits=8"
    assert row_columns(bm25.retriever) == {}
