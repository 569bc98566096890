"""faiss index types of the dense retriever against exact search, on seeded vectors.

The vectors stand in for embeddings (the index does not care where they came from); every
index is the real faiss one, built the way ``Dense.index`` builds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import pytest

from rankbench.harness.errors import ConfigError
from rankbench.retrievers.dense import Dense

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
    from rankbench.harness import cache

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
    from rankbench.harness.config import compose
    from rankbench.harness.stages import row_columns

    exact = compose(["retriever=dense"])
    pq = compose(["retriever=dense", "retriever.index=ivfpq", "retriever.ivf.nprobe=64", "retriever.pq.refine=2"])
    bm25 = compose(["retriever=bm25"])
    assert row_columns(exact.retriever) == {"index": "flat"}  # the harness prefixes the slot: retriever_index
    columns = row_columns(pq.retriever)["index"]
    assert columns == "ivfpq nlist=1024 nprobe=64 train_size=100000 pq.m=96 pq.bits=8 pq.refine=2"
    assert row_columns(bm25.retriever) == {}


def _search_recall(dense: Dense, exact, queries: np.ndarray, k: int = 100) -> float:
    _, found = dense.search(queries, k)
    _, truth = exact.search(queries, k)
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, truth, strict=True)]))


def test_exact_refine_recovers_recall_that_pq_codes_lose(vectors, tmp_path: Path):
    _, exact = _index("flat", vectors, tmp_path)
    queries = vectors[::40].astype(np.float32)
    coarse = {"ivf": {"nlist": 16, "nprobe": 16, "train_size": 4000}}  # every cell: only the codes lose recall
    recalls = {}
    for refine in (0, 4):
        dense, dense._faiss = _index("ivfpq", vectors, tmp_path, **coarse, pq={"m": 4, "refine": refine})
        recalls[refine] = _search_recall(dense, exact, queries)
    assert recalls[4] >= 0.99 > recalls[0], recalls


def test_refined_scores_are_exact_inner_products(vectors, tmp_path: Path):
    params = {"ivf": {"nlist": 16, "nprobe": 4, "train_size": 4000}, "pq": {"m": 8, "refine": 2}}
    dense, dense._faiss = _index("ivfpq", vectors, tmp_path, **params)
    queries = vectors[:5].astype(np.float32)
    scores, rows = dense.search(queries, 10)
    expected = np.einsum("qkd,qd->qk", vectors[rows].astype(np.float32), queries)
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    assert (np.diff(scores, axis=1) <= 0).all()


@pytest.mark.parametrize("kind", ["hnsw", "ivf", "ivfpq"])
def test_memory_mapped_index_gives_the_in_memory_results(vectors, tmp_path: Path, kind: str):
    params = {"ivf": {"nlist": 16, "nprobe": 4, "train_size": 4000}, "pq": {"m": 8}, "hnsw": {"m": 8}}
    dense, mapped = _index(kind, vectors, tmp_path, **params)  # built, written, read back memory-mapped
    in_memory = dense._searching(dense._filled(dense._empty_index()))
    queries = vectors[::97].astype(np.float32)
    found, expected = mapped.search(queries, 50), in_memory.search(queries, 50)
    np.testing.assert_array_equal(found[1], expected[1])
    np.testing.assert_array_equal(found[0], expected[0])


def test_index_from_a_released_memory_map_equals_the_in_memory_one(vectors, tmp_path: Path):
    np.save(tmp_path / "store.npy", vectors)
    mapped = np.load(tmp_path / "store.npy", mmap_mode="r")
    _, from_map = _index("flat_fp16", mapped, tmp_path)  # pages dropped after each added batch
    added = faiss.IndexScalarQuantizer(D, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    added.add(vectors.astype(np.float32))  # faiss's own add, against the codes written in place
    queries = vectors[::50].astype(np.float32)
    assert from_map.ntotal == added.ntotal == N
    np.testing.assert_array_equal(faiss.vector_to_array(from_map.codes), faiss.vector_to_array(added.codes))
    np.testing.assert_array_equal(from_map.search(queries, 20)[1], added.search(queries, 20)[1])


def test_memory_estimate_refuses_naming_the_settings(vectors, tmp_path: Path):
    with pytest.raises(ConfigError, match=r"retriever\.index=flat over 4,000 vectors.*retriever\.memory_limit=1MB"):
        dense = Dense(index="flat", memory_limit="1MB")
        dense.embeddings = _Vectors(vectors, tmp_path / "embeddings-entry")
        dense.build_index(tmp_path)
    flat, fp16, pq = (Dense(index=kind).memory_needed(8_841_823, 384) for kind in ("flat", "flat_fp16", "ivfpq"))
    assert (
        flat > 8_841_823 * 384 * 4 and fp16 > 8_841_823 * 384 * 2 and pq < fp16 / 3
    )  # lists at 1.35x: (96 + 8) bytes a vector


def test_refine_reads_a_memory_mapped_store_as_the_array(vectors, tmp_path: Path):
    np.save(tmp_path / "store.npy", vectors)
    params = {"ivf": {"nlist": 16, "nprobe": 4, "train_size": 4000}, "pq": {"m": 8, "refine": 3}}
    queries = vectors[::97].astype(np.float32)
    found = []
    for store in (vectors, np.load(tmp_path / "store.npy", mmap_mode="r")):  # read with pread / indexed
        dense, dense._faiss = _index("ivfpq", store, tmp_path / str(type(store).__name__), **params)
        found.append(dense.search(queries, 30))
    np.testing.assert_array_equal(found[0][1], found[1][1])
    np.testing.assert_array_equal(found[0][0], found[1][0])
