"""A whole evaluation on tiny data: outputs, skip/overwrite, max_queries, failure safety."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest
import yaml

from rankbench.harness.errors import DataError
from rankbench.harness.experiment import run_experiment
from rankbench.harness.leaderboard import read_rows
from tests.conftest import TINY_DOCS, cache_use, write_beir
from tests.fakes import ScriptedLengthScorer


def test_run_writes_outputs_and_a_leaderboard_row(make_cfg, tiny_beir: Path, tmp_path: Path):
    outcome = run_experiment(make_cfg(f"dataset.path={tiny_beir}", "measures=[nDCG@10,R@100]"))
    files = sorted(p.name for p in outcome.run_dir.iterdir())
    assert files == ["config.yaml", "metrics.json", "perquery.csv", "run.trec"]
    assert outcome.run_dir.parent.parent.name == "scifact" and outcome.run_dir.parent.name == "bm25"
    metrics = json.loads((outcome.run_dir / "metrics.json").read_text())
    assert set(metrics["measures"]) == {"nDCG@10", "R@100"}
    assert metrics["measures"]["R@100"] == 1.0  # every relevant doc is retrieved on this tiny corpus
    with open(outcome.run_dir / "perquery.csv") as f:
        assert [r["qid"] for r in csv.DictReader(f)] == ["q1", "q2", "q3"]
    trec = (outcome.run_dir / "run.trec").read_text().splitlines()
    assert trec[0].split()[:4] == ["q1", "Q0", "d1", "1"]
    assert yaml.safe_load((outcome.run_dir / "config.yaml").read_text())["retriever"]["k1"] == 0.9
    [row] = read_rows(tmp_path / "runs" / "leaderboard.csv")
    assert row["system"] == "bm25" and row["dataset"] == "scifact" and row["num_queries"] == "3"
    assert row["config_hash"] == outcome.run_dir.name and float(row["peak_rss_mb"]) > 0
    assert float(row["nDCG@10"]) == pytest.approx(metrics["measures"]["nDCG@10"], abs=1e-4)


def test_existing_run_is_kept_unless_overwrite(make_cfg, tiny_beir: Path, tmp_path: Path):
    first = run_experiment(make_cfg(f"dataset.path={tiny_beir}"))
    assert cache_use(first.run_dir) == {
        "first-stage": {"built": 1},
        "lucene": {"built": 1},
        "bm25-postings": {"built": 1},
    }
    again = run_experiment(make_cfg(f"dataset.path={tiny_beir}"))
    assert again.row is None and again.run_dir == first.run_dir
    redone = run_experiment(make_cfg(f"dataset.path={tiny_beir}", "overwrite=true"))
    assert redone.row is not None and redone.run_dir == first.run_dir
    assert cache_use(redone.run_dir) == {"first-stage": {"hit": 1}}  # the cached run: no index even opened
    assert len(read_rows(tmp_path / "runs" / "leaderboard.csv")) == 2


def test_other_search_settings_reuse_the_index(make_cfg, tiny_beir: Path):
    run_experiment(make_cfg(f"dataset.path={tiny_beir}"))
    other = run_experiment(make_cfg(f"dataset.path={tiny_beir}", "retriever.k1=1.2"))
    assert cache_use(other.run_dir) == {"first-stage": {"built": 1}, "lucene": {"hit": 1}, "bm25-postings": {"hit": 1}}


def test_max_queries_takes_the_first_in_qid_order(make_cfg, tiny_beir: Path, tmp_path: Path):
    full = run_experiment(make_cfg(f"dataset.path={tiny_beir}"))
    part = run_experiment(make_cfg(f"dataset.path={tiny_beir}", "max_queries=2"))
    assert part.run_dir != full.run_dir  # part of the config hash
    assert {line.split()[0] for line in (part.run_dir / "run.trec").read_text().splitlines()} == {"q1", "q2"}
    rows = read_rows(tmp_path / "runs" / "leaderboard.csv")
    assert [(r["max_queries"], r["num_queries"]) for r in rows] == [("", "3"), ("2", "2")]


def test_changed_data_changes_the_hash(make_cfg, tmp_path: Path):
    a = run_experiment(make_cfg(f"dataset.path={write_beir(tmp_path / 'a')}"))
    b = run_experiment(make_cfg(f"dataset.path={write_beir(tmp_path / 'b', docs=TINY_DOCS[:3])}"))
    assert a.run_dir != b.run_dir


def test_failed_overwrite_loses_nothing(make_cfg, tiny_beir: Path, tmp_path: Path):
    good = run_experiment(make_cfg(f"dataset.path={tiny_beir}"))
    before = {p: p.read_bytes() for p in good.run_dir.iterdir()}
    board = (tmp_path / "runs" / "leaderboard.csv").read_bytes()
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")  # the index cannot be built here: the same run fails midway
    with pytest.raises(OSError):
        run_experiment(make_cfg(f"dataset.path={tiny_beir}", "overwrite=true", f"cache_dir={blocker}"))
    assert {p: p.read_bytes() for p in good.run_dir.iterdir()} == before
    assert (tmp_path / "runs" / "leaderboard.csv").read_bytes() == board
    assert [p for p in (tmp_path / "runs").rglob("*") if ".tmp-" in p.name] == []


def test_bad_corpus_fails_before_any_output(make_cfg, tmp_path: Path):
    broken = write_beir(tmp_path / "broken", corpus_lines=[json.dumps(TINY_DOCS[0]), "{not json"])
    with pytest.raises(DataError, match=r"broken/corpus\.jsonl line 2"):
        run_experiment(make_cfg(f"dataset.path={broken}"))
    assert not (tmp_path / "runs" / "scifact").exists()
    assert not (tmp_path / "runs" / "leaderboard.csv").exists()


def test_every_dataset_config_composes(make_cfg):
    for name in ["scifact", "nfcorpus", "fiqa", "arguana", "scidocs", "trec-covid", "dl19", "dl20", "dev-small"]:
        cfg = make_cfg(f"dataset={name}")
        assert cfg.dataset.name == name and cfg.dataset.ir_datasets_id
        assert len(cfg.measures) >= 3
    assert make_cfg("dataset=arguana").dataset.topics == "topics.beir-v1.0.0-arguana.test.tsv.gz"
    assert make_cfg("dataset=dl19").retriever.remove_query is False
    assert make_cfg("dataset=arguana").retriever.remove_query is True
    assert "AP(rel=2)" in make_cfg("dataset=dl20").measures


def test_reranker_sweep_reuses_first_stage_and_scores(make_cfg, tmp_path: Path, caplog):
    data = write_beir(
        tmp_path / "multi", queries=[{"_id": "q1", "text": "goldfish wifi cats bluetooth"}], qrels=[("q1", "d1", 1)]
    )
    ScriptedLengthScorer.calls = []
    reranker = [f"dataset.path={data}", "+reranker._target_=tests.fakes.ScriptedLengthScorer", "reranker.name=length"]
    shallow = run_experiment(make_cfg(*reranker, "+reranker.depth=1"))
    assert shallow.run_dir.parent.name == "bm25+length"  # safe to type in a shell
    assert len(ScriptedLengthScorer.calls) == 1
    with caplog.at_level(logging.INFO):
        deep = run_experiment(make_cfg(*reranker, "+reranker.depth=3"))
    assert "first stage bm25 from cache" in caplog.text
    # the first stage and the document store were reused; the deeper rerank is a new stage entry
    assert cache_use(deep.run_dir) == {"first-stage": {"hit": 1}, "docstore": {"hit": 1}, "stages": {"built": 1}}
    assert len(ScriptedLengthScorer.calls) == 3  # the depth-1 pair came from the score cache
    assert len(set(ScriptedLengthScorer.calls)) == 3
    ranked = [line.split()[2] for line in (deep.run_dir / "run.trec").read_text().splitlines()]
    lengths = {d["_id"]: len(d["text"]) for d in TINY_DOCS}
    assert [lengths[d] for d in ranked[:3]] == sorted((lengths[d] for d in ranked[:3]), reverse=True)
    assert sorted(ranked) == ["d1", "d2", "d3", "q2"]  # the document below depth 3 is kept
