"""The benchmark scripts still run end to end (a smoke run; speed is never asserted in tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rankbench.harness.compute import native_bf16
from rankbench.harness.machine import cpu, cpu_kind
from tests.conftest import SHARED_DATA, run_python


@pytest.mark.slow
def test_bm25_benchmark_smoke(tmp_path: Path):
    out = tmp_path / "results"
    args = ["--queries", "12", "--repeats", "1", "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    run_python("benchmarks/bm25.py", "--data-root", str(SHARED_DATA), *args)
    report = json.loads((out / "bm25.json").read_text())
    systems = {(r["system"], r["hits"]) for r in report["results"]}
    assert {s for s, _ in systems} >= {"pyserini batch_search", "bm25s", "rank_bm25 BM25Okapi"}
    assert {h for _, h in systems} == {100, 1000}
    numpy_engine = next(r for r in report["results"] if r["extra"].get("equals_searchcollection") is not None)
    assert numpy_engine["extra"]["equals_searchcollection"] is True
    assert "| system |" in (out / "bm25.md").read_text()


@pytest.mark.slow
def test_cross_encoder_benchmark_smoke(tmp_path: Path):
    out = tmp_path / "results"
    args = ["--queries", "2", "--depth", "5", "--max-length", "64", "--out", str(out), "--cache-dir", str(tmp_path)]
    run_python("benchmarks/cross_encoder.py", "--data-root", str(SHARED_DATA), *args, "--rounds", "2")
    name = f"cross_encoder-{cpu_kind(cpu()['cpu_flags'])}"
    report = json.loads((out / f"{name}.json").read_text())
    markdown = (out / f"{name}.md").read_text()
    timed = ["sentence-transformers CrossEncoder.predict (fp32)", "rankbench CrossEncoder (float32)"]
    timed.append("rankbench CrossEncoder (int8)")
    bf16 = "rankbench CrossEncoder (bfloat16)"
    if native_bf16():  # dtype=auto runs bf16 here: it is timed
        assert [r["system"] for r in report["results"]] == [*timed, bf16] and report["skipped"] == []
    else:  # bf16 is emulated here: named as not run, with the reason
        assert [r["system"] for r in report["results"]] == timed
        assert [s["system"] for s in report["skipped"]] == [bf16] and "AVX-512 BF16" in report["skipped"][0]["reason"]
        assert f"Not run: {bf16}" in markdown
    assert report["pairs"] == 10 and all(r["pairs"] == 10 for r in report["results"])
    fp32 = report["results"][1]
    assert fp32["mean_spearman_vs_peer"] > 0.99 and fp32["max_abs_diff_vs_peer"] < 1e-4  # the same model, in fp32
    assert all(r["top10_overlap_vs_fp32"] > 0 for r in report["results"])
    assert report["bm25_ndcg@10"] is None and "nDCG@10" not in markdown  # a fresh head is not evaluated
    assert "| system |" in markdown and "vector flags" in markdown


@pytest.mark.slow
def test_listwise_benchmark_smoke(tmp_path: Path):
    out = tmp_path / "results"
    args = ["--queries", "1", "--depth", "6", "--passage-tokens", "24", "--out", str(out)]
    run_python(
        "benchmarks/listwise.py",
        "--data-root",
        str(SHARED_DATA),
        *args,
        "--override",
        "reranker.window=4",
        "reranker.stride=2",
    )
    report = json.loads((out / "listwise.json").read_text())
    calls = {r["strategy"]: r["calls_per_query"] for r in report["results"]}
    assert calls == {"sliding": 2, "full": 1, "first_token": 2}  # windows (2, 6) and (0, 4)
    assert all(r["prompt_tokens_per_query"] > 0 for r in report["results"])
    assert "| strategy |" in (out / "listwise.md").read_text()


@pytest.mark.slow
def test_llm_cost_benchmark_smoke(tmp_path: Path):
    """Estimate, then the run, over an empty answer cache: the estimate's calls are the run's calls."""
    out = tmp_path / "results"
    overrides = ["reranker.window=4", "reranker.stride=2", "reranker.passage_tokens=24"]
    args = ["--queries", "1", "--depth", "6", "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    run_python("benchmarks/llm_cost.py", "--data-root", str(SHARED_DATA), *args, "--override", *overrides)
    report = json.loads((out / "llm_cost.json").read_text())
    assert report["estimated"]["calls"] == report["measured"]["calls"] == 2  # windows (2, 6) and (0, 4)
    assert report["estimated"]["completion_tokens"] >= report["measured"]["completion_tokens"]  # counted at the cap
    assert report["within"]["calls"] and report["estimated"]["seconds"] > 0
    assert "| prompt_tokens |" in (out / "llm_cost.md").read_text()


@pytest.mark.slow
def test_llm_cost_benchmark_judge_smoke(tmp_path: Path):
    """The judge's estimate, then the judgment, over an empty answer cache: same calls, same prompt tokens."""
    out = tmp_path / "results"
    overrides = ["max_tokens=12", "passage_tokens=32", "holdout.size=1"]
    args = ["--task", "judge", "--queries", "1", "--depth", "2", "--out", str(out)]
    run_python("benchmarks/llm_cost.py", "--data-root", str(SHARED_DATA), *args, "--override", *overrides)
    report = json.loads((out / "llm_cost_judge.json").read_text())
    assert report["task"] == "judge" and report["estimated"]["calls"] == report["measured"]["calls"] >= 2
    assert report["estimated"]["prompt_tokens"] == report["measured"]["prompt_tokens"]  # SmolLM2's own template
    assert report["estimated"]["completion_tokens"] >= report["measured"]["completion_tokens"]  # at the cap
    assert report["estimated"]["seconds"] > 0 and report["measured"]["seconds"] > 0


def test_docstore_benchmark_smoke(tmp_path: Path):
    """A few seconds: 2,000 synthetic documents, every store built and every fetch complete."""
    out = tmp_path / "results"
    args = ["--docs", "2000", "--fetches", "5", "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    run_python("benchmarks/docstore.py", "--data-root", str(SHARED_DATA), *args)
    report = json.loads((out / "docstore.json").read_text())
    ours, *candidates = report["systems"]
    assert ours["built"] == {"built": 1} and ours["reused"] == {"hit": 1}
    assert [c["system"].split(",")[0].split(" (")[0] for c in candidates] == ["SQLite WITHOUT ROWID", "offsets index"]
    assert report["meta"]["docs"] == 2000 and report["meta"]["cpu_flags"]
    assert "| store |" in (out / "docstore.md").read_text()
