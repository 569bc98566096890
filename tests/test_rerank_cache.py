"""Pointwise rerank driver and its score cache, driven by a scripted fake scorer (pure logic)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from rankbench.harness.datasets import BeirCorpus
from rankbench.harness.errors import DataError
from rankbench.harness.readers import BeirSource
from rankbench.harness.rerank import rerank_pointwise
from rankbench.harness.score_cache import ScoreCache
from rankbench.harness.types import Query
from tests.fakes import ScriptedLengthScorer

QUERY = Query("q1", "anything")
# first-stage order d3 > d1 > d2 > q2; text lengths: d1=44, d2=48, d3=31, q2=49
RUN = {"q1": [("d3", 9.0), ("d1", 8.0), ("d2", 7.0), ("q2", 6.0)]}


@pytest.fixture
def corpus(tiny_beir: Path) -> BeirCorpus:
    ScriptedLengthScorer.calls = []
    return BeirCorpus(BeirSource(tiny_beir))


def test_head_is_reranked_and_tail_keeps_first_stage_order(corpus, tmp_path: Path):
    scores = ScoreCache(tmp_path, {"model": "length"})
    out = rerank_pointwise(ScriptedLengthScorer(), [QUERY], RUN, corpus, depth=2, cache=scores)
    assert [d for d, _ in out["q1"]] == ["d1", "d3", "d2", "q2"]  # d1 (44) > d3 (31); tail untouched
    values = [s for _, s in out["q1"]]
    assert values == sorted(values, reverse=True)  # scores agree with the ranking
    assert len(out["q1"]) == len(RUN["q1"])  # nothing dropped below the depth


def test_deeper_rerank_scores_only_new_pairs(corpus, tmp_path: Path):
    scorer = ScriptedLengthScorer()
    rerank_pointwise(scorer, [QUERY], RUN, corpus, depth=2, cache=ScoreCache(tmp_path, {"model": "length"}))
    assert scorer.calls == [("q1", "d3"), ("q1", "d1")]
    ScriptedLengthScorer.calls = []
    out = rerank_pointwise(scorer, [QUERY], RUN, corpus, depth=4, cache=ScoreCache(tmp_path, {"model": "length"}))
    assert scorer.calls == [("q1", "d2"), ("q1", "q2")]
    assert [d for d, _ in out["q1"]] == ["q2", "d2", "d1", "d3"]


def test_changed_query_text_is_not_served_from_cache(corpus, tmp_path: Path):
    scorer = ScriptedLengthScorer()
    cache = ScoreCache(tmp_path, {"model": "length"})
    rerank_pointwise(scorer, [QUERY], RUN, corpus, depth=1, cache=cache)
    rerank_pointwise(scorer, [Query("q1", "revised topic")], RUN, corpus, depth=1, cache=cache)
    assert scorer.calls == [("q1", "d3"), ("q1", "d3")]


def test_unknown_retrieved_document(corpus, tmp_path: Path):
    with pytest.raises(DataError, match="1 retrieved documents are not in"):
        rerank_pointwise(
            ScriptedLengthScorer(), [QUERY], {"q1": [("nope", 1.0)]}, corpus, 5, ScoreCache(tmp_path, {"m": 1})
        )


def test_corrupt_or_foreign_score_file_is_rebuilt(tmp_path: Path, caplog):
    cache = ScoreCache(tmp_path, {"model": "a"})
    cache.put("q1", "t", {"d1": 1.5})
    cache.close()
    assert ScoreCache(tmp_path, {"model": "a"}).get("q1", "t", ["d1"]) == {"d1": 1.5}
    cache.path.write_bytes(b"this is not a database" * 100)
    rebuilt = ScoreCache(tmp_path, {"model": "a"})
    assert "stale or corrupt" in caplog.text and len(rebuilt) == 0
    rebuilt.put("q1", "t", {"d1": 2.0})
    rebuilt.close()
    with sqlite3.connect(rebuilt.path) as db:  # the key is recorded in the file itself
        assert '"model": "a"' in db.execute("SELECT key FROM meta").fetchone()[0]
