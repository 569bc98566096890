"""The dense encoding benchmark still runs end to end (a smoke run; speed is never asserted in tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.dense import SYSTEMS
from tests.conftest import SHARED_DATA, run_python


@pytest.mark.slow
def test_dense_benchmark_smoke(tmp_path: Path):
    out = tmp_path / "results"
    args = ["--docs", "16", "--rounds", "2", "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    run_python("benchmarks/dense.py", "--data-root", str(SHARED_DATA), *args)
    report = json.loads((out / "dense.json").read_text())
    assert [r["key"] for r in report["results"]] == list(SYSTEMS)
    for r in report["results"]:
        assert r["docs"] == 16 and r["docs_per_s"] > 0 and r["peak_rss_mb"] > 0
        assert r["cosine_min"] > 0.99, r["system"]  # every system encodes the same model
    markdown = (out / "dense.md").read_text()
    assert all(r["system"] in markdown for r in report["results"])
