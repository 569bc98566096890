"""Lucene BM25 through Anserini on a tiny corpus: ranking, reuse and repair of its index."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import pytest

from rankbench.harness.datasets import BeirCorpus
from rankbench.harness.errors import ConfigError
from rankbench.harness.readers import BeirSource
from rankbench.harness.types import Query
from rankbench.retrievers.bm25 import BM25


@pytest.fixture
def corpus(tiny_beir: Path) -> BeirCorpus:
    return BeirCorpus(BeirSource(tiny_beir))


def test_ranks_the_matching_document_first(corpus, tmp_path: Path):
    bm25 = BM25(hits=10)
    bm25.index(corpus, tmp_path)
    run = bm25.retrieve([Query("q1", "do goldfish grow"), Query("q3", "how long do cats sleep")])
    assert run["q1"][0][0] == "d1" and run["q3"][0][0] == "d3"
    assert all(a[1] >= b[1] for hits in run.values() for a, b in itertools.pairwise(hits))


def test_remove_query_drops_the_doc_with_the_query_id(corpus, tmp_path: Path):
    query = [Query("q2", "bluetooth wireless")]
    kept = BM25(hits=10)
    kept.index(corpus, tmp_path)
    assert "q2" in [d for d, _ in kept.retrieve(query)["q2"]]
    removed = BM25(hits=10, remove_query=True)
    removed.index(corpus, tmp_path)
    assert [d for d, _ in removed.retrieve(query)["q2"]] == ["d2"]


def test_hits_limit_and_queries_without_matches(corpus, tmp_path: Path):
    bm25 = BM25(hits=1)
    bm25.index(corpus, tmp_path)
    run = bm25.retrieve([Query("q1", "wireless goldfish cats"), Query("q9", "zzzz unmatched"), Query("q8", "")])
    assert len(run["q1"]) == 1
    assert run["q9"] == [] and run["q8"] == []


def test_multifield_searches_title_separately(corpus, tmp_path: Path):
    bm25 = BM25(hits=10, multifield=True)
    bm25.index(corpus, tmp_path)
    assert bm25.retrieve([Query("x", "cats")])["x"][0][0] == "d3"
    flat = BM25(hits=10)
    flat.index(corpus, tmp_path)
    assert flat.index_dir != bm25.index_dir  # flat and multifield indexes are separate cache entries


def test_second_index_call_reuses_the_cached_index(corpus, tmp_path: Path, caplog):
    first = BM25()
    first.index(corpus, tmp_path)
    stamp = (first.index_dir.parent / "manifest.json").stat().st_mtime_ns
    second = BM25(k1=1.2, b=0.75)  # search settings do not change the index
    with caplog.at_level(logging.INFO):
        second.index(corpus, tmp_path)
    assert second.index_dir == first.index_dir
    assert (second.index_dir.parent / "manifest.json").stat().st_mtime_ns == stamp
    assert "reusing Lucene index" in caplog.text


def test_corrupt_cached_index_is_detected_and_rebuilt(corpus, tmp_path: Path, caplog):
    bm25 = BM25(hits=10)
    bm25.index(corpus, tmp_path)
    segment = max(bm25.index_dir.iterdir(), key=lambda p: p.stat().st_size)
    segment.write_bytes(segment.read_bytes()[: segment.stat().st_size // 2])
    rebuilt = BM25(hits=10)
    with caplog.at_level(logging.WARNING):
        rebuilt.index(corpus, tmp_path)
    assert "stale or corrupt" in caplog.text and segment.name in caplog.text
    assert rebuilt.retrieve([Query("q1", "goldfish")])["q1"][0][0] == "d1"


def test_bad_parameters_name_the_config_key():
    with pytest.raises(ConfigError, match=r"retriever\.b in \[0, 1\]"):
        BM25(b=1.5)
    with pytest.raises(ConfigError, match=r"retriever\.hits must be >= 1"):
        BM25(hits=0)
    with pytest.raises(ConfigError, match=r"retriever\.field_weights must be > 0"):
        BM25(multifield=True, field_weights={"contents": 1.0, "title": 0.0})
