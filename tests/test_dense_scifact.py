"""Dense and hybrid retrieval on SciFact as users run them, against MTEB's published number.

One cache folder serves the module, so SciFact is encoded once (about a minute with bf16).
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT, SHARED_DATA


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dense") / "runs"


def evaluate(runs: Path, *overrides: str) -> dict[str, str]:
    env = {**os.environ, "RANKBENCH_DATA_ROOT": str(SHARED_DATA)}
    result = subprocess.run(
        [sys.executable, "evaluate.py", f"runs_dir={runs}", *overrides],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(runs / "leaderboard.csv", newline="") as f:
        return list(csv.DictReader(f))[-1]


@pytest.mark.slow
def test_minilm_matches_mteb_and_hybrids_beat_both_inputs(runs: Path):
    dense = evaluate(runs, "retriever=dense")
    assert float(dense["nDCG@10"]) == pytest.approx(0.6451, abs=0.005)  # MTEB, exact inner product
    bm25 = evaluate(runs, "retriever=bm25")
    rrf = evaluate(runs, "retriever=hybrid", "retriever.method=rrf")
    lin = evaluate(runs, "retriever=hybrid", "retriever.method=linear")
    assert float(rrf["index_s"]) < 1.0 and float(lin["retrieve_s"]) < float(dense["index_s"])  # inputs reused
    best = max(float(rrf["nDCG@10"]), float(lin["nDCG@10"]))
    assert best > max(float(dense["nDCG@10"]), float(bm25["nDCG@10"]))
