"""The dense scaling benchmark runs end to end on a tiny store, resumes, and refuses what does not fit.

Encoding SciFact takes minutes, so the benchmark reads a fixture source instead: the folder
``prepare_source`` would write (document and query vectors, qrels, token statistics), with
seeded clustered vectors in place of model embeddings.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_python

DOCS, QUERIES, DIM = 600, 20, 32


@pytest.fixture
def fake_scifact_source(tmp_path: Path) -> Path:
    """A source folder shaped like ``prepare_source``'s: each query is a noisy copy of its one relevant document."""
    rng = np.random.default_rng(5)
    centers = rng.normal(size=(12, DIM))
    docs = centers[rng.integers(0, 12, DOCS)] + 0.4 * rng.normal(size=(DOCS, DIM))
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    relevant = rng.choice(DOCS, QUERIES, replace=False)
    queries = docs[relevant] + 0.1 * rng.normal(size=(QUERIES, DIM))
    folder = tmp_path / "source-fixture"
    folder.mkdir()
    np.save(folder / "doc_vectors.npy", docs.astype(np.float16))
    np.save(folder / "query_vectors.npy", queries.astype(np.float32))
    docids = [str(1000 + i) for i in range(DOCS)]
    (folder / "docids.json").write_text(json.dumps(docids))
    (folder / "qids.json").write_text(json.dumps([f"q{i}" for i in range(QUERIES)]))
    (folder / "qrels.json").write_text(json.dumps({f"q{i}": {docids[d]: 1} for i, d in enumerate(relevant)}))
    info = {"model": "fixture", "docs": DOCS, "max_length": 256, "mean_words": 200.0, "mean_tokens": 250.0}
    (folder / "info.json").write_text(json.dumps({**info, "tokens_per_word": 1.3}))
    return folder


def _run(source: Path, tmp_path: Path, *extra: str) -> dict:
    """One benchmark run over small stores; each child imports torch, so few children keep it quick."""
    args = ["--source", str(source), "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out")]
    small = ["--set", "ivf.nlist=8", "--set", "ivf.train_size=2000", "--set", "pq.m=8", "--hits", "20"]
    run_python("benchmarks/dense_scale.py", *args, *small, *extra, timeout=300)
    return json.loads((tmp_path / "out" / "dense_scale.json").read_text())


@pytest.mark.slow
def test_dense_scale_benchmark_end_to_end_and_resumes(fake_scifact_source: Path, tmp_path: Path):
    report = _run(fake_scifact_source, tmp_path, "--sizes", "0,1500", "--indexes", "flat,ivfpq")
    results = report["results"]
    assert [(r["n"], r["index"]) for r in results] == [(n, kind) for n in (0, 1500) for kind in ("flat", "ivfpq")]
    assert all(r["status"] == "ok" for r in results), [r.get("stderr_tail") for r in results]
    by = {(r["n"], r["index"]): r for r in results}
    assert by[(1500, "flat")]["vectors"] == DOCS + 1500
    assert by[(0, "flat")]["recall"] == 1.0  # exact search finds the exact top
    assert by[(0, "flat")]["ndcg10"] > 0.5  # queries sit next to their relevant documents
    assert by[(1500, "ivfpq")]["disk_bytes"] > 0 and by[(1500, "flat")]["disk_bytes"] is None
    markdown = (tmp_path / "out" / "dense_scale.md").read_text()
    assert "avx2" in markdown or "no avx2" in markdown
    assert "MS MARCO" in markdown and "Reproduce" in markdown

    again = _run(fake_scifact_source, tmp_path, "--sizes", "0,1500", "--indexes", "flat,ivfpq")
    assert again["meta"]["children"] == {"ran": 0, "reused": len(results), "failed": 0}


@pytest.mark.slow
def test_dense_scale_records_an_index_refused_by_its_memory_estimate(fake_scifact_source: Path, tmp_path: Path):
    report = _run(fake_scifact_source, tmp_path, "--sizes", "1500", "--indexes", "flat", "--memory-limit", "1MB")
    assert [(r["n"], r["status"]) for r in report["results"]] == [(1500, "refused")]
    for r in report["results"]:
        assert "retriever.memory_limit=1MB" in r["reason"] and "retriever.index" in r["reason"]
    assert "refused" in (tmp_path / "out" / "dense_scale.md").read_text()
