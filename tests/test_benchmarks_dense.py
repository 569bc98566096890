"""The dense encoding benchmark still runs end to end (a smoke run; speed is never asserted in tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.dense import SYSTEMS
from rankbench.harness.machine import cpu, cpu_kind
from tests.conftest import SHARED_DATA, run_python


@pytest.mark.slow
def test_dense_benchmark_smoke(tmp_path: Path):
    out = tmp_path / "results"
    args = ["--docs", "16", "--rounds", "2", "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    run_python("benchmarks/dense.py", "--data-root", str(SHARED_DATA), *args)
    name = f"dense-{cpu_kind(cpu()['cpu_flags'])}"  # one report per CPU kind
    report = json.loads((out / f"{name}.json").read_text())
    assert [r["key"] for r in report["results"]] == list(SYSTEMS)
    for r in report["results"]:
        assert r["docs"] == 16 and r["docs_per_s"] > 0 and r["peak_rss_mb"] > 0
        assert r["cosine_min"] > (0.9 if r["key"] == "torch-int8" else 0.99), r["system"]  # the same model
    markdown = (out / f"{name}.md").read_text()
    assert all(r["system"] in markdown for r in report["results"])


def test_reports_are_kept_per_cpu_kind():
    from tests.test_bf16 import AMX, AVX2, AVX512_BF16

    kinds = [cpu_kind(cpu(line)["cpu_flags"]) for line in (AVX2, AVX512_BF16, AMX, "flags\t\t: fpu avx512f avx2\n")]
    assert kinds == ["avx2", "avx512_bf16", "avx512_bf16", "avx512"]
    assert cpu_kind([]) == "other"
