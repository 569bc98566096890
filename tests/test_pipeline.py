"""A three-stage cascade on SciFact, from the command line's config and from Python: the same run, and
each stage cached under the stages before it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import rankbench as rb
from rankbench.harness.experiment import run_experiment
from rankbench.harness.runfile import read_trec_run
from tests.conftest import SHARED_DATA

LISTWISE = {"window": 4, "stride": 2, "passage_tokens": 40}


@pytest.fixture(scope="module")
def cross_encoder(untrained_cross_encoder: Path) -> Path:
    return untrained_cross_encoder


def cascade_overrides(model: Path, listwise_depth: int = 4) -> list[str]:
    """BM25 -> cross-encoder at depth 10 -> SmolLM2 listwise at ``listwise_depth``, as typed on the command line."""
    stage3 = [f"reranker2.{k}={v}" for k, v in LISTWISE.items()]
    return ["max_queries=5", "reranker=cross_encoder", f"reranker.model={model}", "reranker.depth=10"] + [
        "reranker@reranker2=listwise",
        f"reranker2.depth={listwise_depth}",
        *stage3,
    ]


def stage_cache(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())["stage_cache"]


@pytest.mark.slow
def test_cascade_from_config_and_from_python_gives_one_run(make_cfg, cross_encoder: Path, tmp_path: Path):
    from_cli = run_experiment(make_cfg(*cascade_overrides(cross_encoder)))
    cascade = rb.BM25() >> rb.CrossEncoder(str(cross_encoder)) % 10 >> rb.Listwise(**LISTWISE) % 4
    elsewhere = [f"runs_dir={tmp_path / 'python'}", f"data_root={SHARED_DATA}", "max_queries=5"]
    from_python = run_experiment(cascade.config(elsewhere))  # its own caches: every stage computed again

    assert from_python.row["config_hash"] == from_cli.row["config_hash"]
    assert read_trec_run(from_python.run_dir / "run.trec") == read_trec_run(from_cli.run_dir / "run.trec")
    for outcome in (from_cli, from_python):
        assert stage_cache(outcome.run_dir)["reranker2"]["stages"] == {"built": 1}
    row = from_cli.row
    assert row["system"] == "bm25+cross_encoder+listwise" == from_cli.run_dir.parent.name
    assert (row["retriever"], row["reranker"], row["reranker2"]) == ("bm25", "cross_encoder", "listwise")
    assert (row["reranker_depth"], row["reranker2_depth"]) == (10, 4)
    assert row["reranker_model"] == str(cross_encoder) and row["reranker2_model"].startswith("HuggingFaceTB")

    shallower = run_experiment(make_cfg(*cascade_overrides(cross_encoder, listwise_depth=3)))
    stages = stage_cache(shallower.run_dir)
    assert stages["retriever"] == {"first-stage": {"hit": 1}}
    assert stages["reranker"] == {"stages": {"hit": 1}}  # the cross-encoder was not even loaded
    assert stages["reranker2"]["stages"] == {"built": 1}
    reranked, before = (read_trec_run(o.run_dir / "run.trec") for o in (shallower, from_cli))
    for qid, hits in before.items():  # below the new depth the cross-encoder's order stands
        assert [d for d, _ in reranked[qid][3:10]] == [d for d, _ in read_ce(from_cli)[qid][3:10]]
        assert sorted(d for d, _ in reranked[qid]) == sorted(d for d, _ in hits)


def read_ce(outcome) -> dict:
    """The cross-encoder stage's own run, from its cache entry (the input the listwise stage reranked)."""
    cache = Path(outcome.row["run_path"]).parents[2] / "cache" / "stages"
    entries = [e for e in cache.iterdir() if (e / "run.trec").is_file() and _stage_name(e) == "cross_encoder"]
    assert len(entries) == 1
    return read_trec_run(entries[0] / "run.trec")


def _stage_name(entry: Path) -> str:
    return json.loads((entry / "manifest.json").read_text())["key"]["reranker"]["name"]
