"""evaluate.py as users run it: config errors, unreachable data, and SciFact's reference scores."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from rankbench.harness.leaderboard import read_rows
from tests.conftest import cache_use, run_python


def evaluate(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {"IR_DATASETS_HOME": str(tmp_path / "irds")}
    return run_python("evaluate.py", f"runs_dir={tmp_path / 'runs'}", *overrides, env=env, check=False)


@pytest.mark.parametrize(
    ("override", "group", "choice"),
    [("retriever=bm26", "retriever", "bm25_multifield"), ("dataset=scifakt", "dataset", "nfcorpus")],
)
def test_unknown_component_lists_the_choices(tmp_path: Path, override: str, group: str, choice: str):
    result = evaluate(tmp_path, override)
    assert result.returncode != 0
    assert f"Could not find '{group}/{override.split('=')[1]}'" in result.stderr
    assert f"Available options in '{group}'" in result.stderr and choice in result.stderr


def test_unreachable_dataset_is_one_clear_message(tmp_path: Path):
    result = evaluate(tmp_path, "dataset=nfcorpus")
    assert result.returncode == 2
    assert "dataset 'nfcorpus' could not be resolved" in result.stderr
    assert "Traceback" not in result.stderr and "To provide it" in result.stderr
    assert not (tmp_path / "runs" / "leaderboard.csv").exists()


def test_bad_measure_is_named(tmp_path: Path):
    result = evaluate(tmp_path, "measures=[nDCG@10,Bogus@3]")
    assert result.returncode == 2 and "measures[1]='Bogus@3'" in result.stderr


@pytest.mark.slow
def test_scifact_bm25_runs_from_the_command_line_and_reruns_from_its_caches(tmp_path: Path):
    """The default command end to end; its numbers against Pyserini's 2CR are the reproduction matrix's
    (tests/test_dense_scifact.py runs conf/reproduce.yaml's cheap tier)."""
    flat = evaluate(tmp_path)  # no arguments: BM25 flat on SciFact
    assert flat.returncode == 0, flat.stderr[-3000:]
    [first] = read_rows(tmp_path / "runs" / "leaderboard.csv")
    assert cache_use(first["run_path"]) == {
        "first-stage": {"built": 1},
        "lucene": {"built": 1},
        "bm25-postings": {"built": 1},
    }
    multi = evaluate(tmp_path, "retriever=bm25_multifield")
    assert multi.returncode == 0, multi.stderr[-3000:]
    again = evaluate(tmp_path, "overwrite=true")
    assert again.returncode == 0, again.stderr[-3000:]
    assert cache_use(first["run_path"]) == {"first-stage": {"hit": 1}}  # the overwrite reran from the cached run

    first, multifield, second = read_rows(tmp_path / "runs" / "leaderboard.csv")
    assert first["num_queries"] == "300" and first["dataset"] == "scifact"
    assert multifield["system"] == "bm25_multifield"  # its 2CR numbers: the reproduction matrix's test
    assert second["config_hash"] == first["config_hash"]
    metrics = json.loads((Path(first["run_path"]) / "metrics.json").read_text())
    assert metrics["measures"]["nDCG@10"] == pytest.approx(float(first["nDCG@10"]), abs=1e-4)
    assert "nDCG@10" in flat.stdout and "seconds:" in flat.stdout  # the summary table
