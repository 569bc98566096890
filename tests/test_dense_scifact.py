"""Dense and hybrid retrieval on SciFact as users run them, against MTEB's published number.

One cache folder serves the module, so SciFact is encoded once (a minute or more: bf16 where the CPU has it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rankbench.harness.leaderboard import read_rows
from tests.conftest import cache_use, run_python


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dense") / "runs"


def evaluate(runs: Path, *overrides: str) -> dict[str, str]:
    """Run evaluate.py and return the leaderboard row it added."""
    run_python("evaluate.py", f"runs_dir={runs}", *overrides, timeout=1200)
    return read_rows(runs / "leaderboard.csv")[-1]


@pytest.mark.slow
def test_minilm_matches_mteb_and_hybrids_beat_both_inputs(runs: Path):
    dense = evaluate(runs, "retriever=dense")
    assert float(dense["nDCG@10"]) == pytest.approx(0.6451, abs=0.005)  # MTEB, exact inner product
    bm25 = evaluate(runs, "retriever=bm25")
    rrf = evaluate(runs, "retriever=hybrid", "retriever.method=rrf")
    lin = evaluate(runs, "retriever=hybrid", "retriever.method=linear")
    for hybrid in (rrf, lin):  # only the fusion is computed: both inputs' runs come from the stage cache
        assert cache_use(hybrid["run_path"]) == {"first-stage": {"built": 1, "hit": 2}}
    best = max(float(rrf["nDCG@10"]), float(lin["nDCG@10"]))
    assert best > max(float(dense["nDCG@10"]), float(bm25["nDCG@10"]))
