"""The scaling benchmark: its children are measured one by one and resumed, and a crash or a corpus too
big for bm25s is reported, not fatal."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmarks import synthetic
from benchmarks.scale import bm25s_guard, run_child, stderr_tail
from rankbench.harness.machine import cpu
from tests.conftest import SHARED_DATA, run_python


def test_bm25s_guard_refuses_msmarco_shape_on_24_gb():
    words = int(synthetic.MSMARCO_PASSAGES * synthetic.MSMARCO_MEAN_WORDS)
    reason = bm25s_guard(synthetic.MSMARCO_PASSAGES, words, available_gb=22.0)
    assert reason is not None and "22.0 GiB available" in reason
    assert bm25s_guard(105_183, 23_700_000, available_gb=22.0) is None


def test_crashed_child_is_reported_with_its_stderr(tmp_path: Path):
    code = "import sys; print('indexing', file=sys.stderr); sys.exit(3)"
    child = run_child([sys.executable, "-c", code], tmp_path / "child.log")
    assert child["returncode"] == 3 and child["maxrss_gb"] > 0
    assert stderr_tail(tmp_path / "child.log") == "indexing"


def test_cpu_flags_read_from_cpuinfo():
    info = "model name\t: Some CPU\nflags\t\t: fpu sse avx avx2 avx512f avx512_bf16 amx_tile\n"
    assert cpu(info) == {"cpu": "Some CPU", "cpu_flags": ["amx_tile", "avx2", "avx512_bf16", "avx512f"]}


@pytest.mark.slow
def test_scale_benchmark_smoke_and_resume(tmp_path: Path):
    args = ["--sizes", "200", "--queries", "5", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out")]
    run_python("benchmarks/scale.py", "--data-root", str(SHARED_DATA), *args)
    report = json.loads((tmp_path / "out" / "scale.json").read_text())
    assert [(r["corpus"], r["system"], r["status"]) for r in report["results"]] == [
        ("scifact+200", system, "ok") for system in ("numpy", "anserini", "bm25s")
    ]
    assert report["meta"]["children"] == {"ran": 3, "reused": 0, "failed": 0, "skipped": 0}
    numpy_engine = report["results"][0]
    assert numpy_engine["built"] and numpy_engine["same_as_anserini"] is True
    assert set(numpy_engine["qps"]) == {"10", "100", "1000"} and numpy_engine["queries"] == 5
    assert report["results"][1]["cache"] == {"lucene": {"hit": 1}}  # the anserini engine reused the index
    markdown = (tmp_path / "out" / "scale.md").read_text()
    assert sum(line.startswith("| scifact+200 |") for line in markdown.splitlines()) == 3 + 1  # rows + ratios

    run_python("benchmarks/scale.py", "--data-root", str(SHARED_DATA), *args)
    again = json.loads((tmp_path / "out" / "scale.json").read_text())
    assert again["meta"]["children"] == {"ran": 0, "reused": 3, "failed": 0, "skipped": 0}
    assert [r["qps"] for r in again["results"]] == [r["qps"] for r in report["results"]]
