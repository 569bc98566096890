"""Sweeps as users run them: resume after completion or kill -9, parallel workers, launchers, Optuna."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from rankbench.harness.leaderboard import read_rows
from tests.conftest import PROJECT, SHARED_DATA, cache_use, run_python
from tests.ray_head import RayHead

GRID = ["retriever=bm25,bm25_multifield", "retriever.k1=0.9,1.2"]  # 4 jobs


def command(runs: Path, *overrides: str) -> list[str]:
    return ["evaluate.py", "-m", f"runs_dir={runs}", *overrides]


def sweep(runs: Path, *overrides: str) -> subprocess.CompletedProcess:
    return run_python(*command(runs, *overrides))


def rows(runs: Path) -> list[dict[str, str]]:
    return read_rows(runs / "leaderboard.csv")


def assert_intact(runs: Path, expected: int) -> None:
    """Exactly one complete row and run folder per config, nothing half-written left behind."""
    board = rows(runs)
    assert len(board) == expected
    assert len({r["config_hash"] for r in board}) == expected
    for row in board:
        assert row["nDCG@10"] and row["total_s"] and row["run_path"]
        files = sorted(p.name for p in Path(row["run_path"]).iterdir())
        assert files == ["config.yaml", "metrics.json", "perquery.csv", "run.trec"]
    folders = [p for p in (runs / "scifact").glob("*/*") if not p.name.startswith(".")]
    assert len(folders) == expected
    assert [p for p in runs.rglob("*") if ".tmp-" in p.name] == []


def written(runs: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of the leaderboard, run folders and cache files: rewriting one, even unchanged, shows."""
    paths = [runs / "leaderboard.csv", *(runs / "scifact").rglob("*"), *(runs / "cache").rglob("*")]
    return {str(p): (p.stat().st_ino, p.stat().st_mtime_ns) for p in paths if p.is_file()}


@pytest.mark.slow
def test_four_job_sweep_then_rerun_skips_everything(tmp_path: Path):
    runs = tmp_path / "runs"
    sweep(runs, *GRID)
    assert_intact(runs, 4)
    used = [cache_use(row["run_path"]) for row in rows(runs)]
    assert [u["first-stage"] for u in used] == [{"built": 1}] * 4
    assert sorted(outcome for u in used for outcome in u["lucene"]) == ["built", "built", "hit", "hit"]  # k1 shares
    before = written(runs)
    again = sweep(runs, *GRID)
    assert again.stderr.count("skipping") == 4
    assert written(runs) == before  # nothing was computed, indexed or written again
    assert_intact(runs, 4)


@pytest.mark.slow
def test_kill_9_mid_sweep_then_resume(tmp_path: Path):
    runs = tmp_path / "runs"
    env = {**os.environ, "RANKBENCH_DATA_ROOT": str(SHARED_DATA)}
    grid = [*GRID, "max_queries=150"]
    proc = subprocess.Popen(
        [sys.executable, *command(runs, *grid)],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not ((runs / "leaderboard.csv").is_file() and len(rows(runs)) >= 1):
        assert proc.poll() is None and time.monotonic() < deadline, "the sweep ended before it could be killed"
        time.sleep(0.1)
    time.sleep(1.0)  # into the second job
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(rows(runs))
    assert 1 <= done_before < 4
    resumed = sweep(runs, *grid)
    assert resumed.stderr.count("skipping") == done_before
    assert_intact(runs, 4)


@pytest.mark.slow
def test_eight_jobs_on_two_parallel_workers(tmp_path: Path):
    runs = tmp_path / "runs"
    sweep(
        runs,
        "hydra/launcher=parallel",
        "retriever=bm25,bm25_multifield",
        "retriever.k1=0.6,0.9,1.2,1.5",
        "max_queries=25",
    )
    assert_intact(runs, 8)
    assert {r["retriever"] for r in rows(runs)} == {"bm25", "bm25_multifield"}


@pytest.mark.slow
def test_submitit_local_launcher(tmp_path: Path):
    runs = tmp_path / "runs"
    sweep(runs, "hydra/launcher=local", "retriever=bm25,bm25_multifield", "max_queries=15")
    assert_intact(runs, 2)


@pytest.mark.slow
def test_ray_launcher_in_local_mode(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # no cluster: ray.init starts a local instance
    runs = tmp_path / "runs"
    sweep(runs, "hydra/launcher=ray_cluster", "retriever=bm25,bm25_multifield", "max_queries=7")
    assert_intact(runs, 2)


@pytest.mark.slow
def test_ray_launcher_on_a_running_cluster(tmp_path: Path, ray_client: RayHead):
    runs = tmp_path / "runs"  # jobs run in the head's workers; ray_client sets RAY_ADDRESS for the sweep
    sweep(runs, "hydra/launcher=ray_cluster", "retriever=bm25,bm25_multifield", "max_queries=7")
    assert_intact(runs, 2)


@pytest.mark.slow
def test_optuna_tunes_on_train_and_refuses_test(tmp_path: Path):
    runs = tmp_path / "runs"
    sweep(runs, "experiment=tune_bm25", "hydra.sweeper.n_trials=3", "max_queries=40")
    results = yaml.safe_load((runs / "tune" / "bm25-scifact-train" / "optimization_results.yaml").read_text())
    assert 0.3 <= results["best_params"]["retriever.k1"] <= 2.0 and 0.1 <= results["best_params"]["retriever.b"] <= 1.0
    assert {r["dataset"] for r in rows(runs)} == {"scifact-train"} and len(rows(runs)) == 3
    assert max(float(r["nDCG@10"]) for r in rows(runs)) == pytest.approx(results["best_value"], abs=1e-4)
    refused = run_python(
        *command(runs, "experiment=tune_bm25", "dataset=scifact", "hydra.sweeper.n_trials=1"), check=False
    )
    assert refused.returncode == 2 and "tuning is only offered on" in refused.stderr


# The hybrid's "dense" stage swapped for BM25 multifield: the selection's mechanics are the same, and
# encoding SciFact with MiniLM would add minutes. The stage keeps its name, so retriever.weights.dense applies.
CHEAP_HYBRID = "retriever@retriever.stages.dense=bm25_multifield"


@pytest.mark.slow
def test_optuna_tunes_fusion_on_train_then_the_best_is_evaluated_on_test(tmp_path: Path):
    runs = tmp_path / "runs"
    sweep(runs, "experiment=tune_fusion", CHEAP_HYBRID, "hydra.sweeper.n_trials=4", "max_queries=40")
    path = runs / "tune" / "fusion-scifact-train" / "optimization_results.yaml"
    results = yaml.safe_load(path.read_text())
    best = results["best_params"]
    assert best["retriever.method"] in {"rrf", "linear"} and best["retriever.normalization"] in {"minmax", "zscore"}
    assert 0.1 <= best["retriever.weights.dense"] <= 10.0
    trials = rows(runs)
    assert {r["dataset"] for r in trials} == {"scifact-train"} and len(trials) == 4
    assert max(float(r["nDCG@10"]) for r in trials) == pytest.approx(results["best_value"], abs=1e-4)

    chosen = run_python("-m", "harness.tune", str(path)).stdout.split()  # as `make tune-fusion` runs it
    run_python(
        "evaluate.py", f"runs_dir={runs}", "retriever=hybrid", CHEAP_HYBRID, "retriever.name=hybrid_tuned", *chosen
    )
    [tuned] = [r for r in rows(runs) if r["system"] == "hybrid_tuned"]
    assert tuned["dataset"] == "scifact" and tuned["num_queries"] == "300"  # SciFact test, every query
    retriever = yaml.safe_load((Path(tuned["run_path"]) / "config.yaml").read_text())["retriever"]
    assert retriever["method"] == best["retriever.method"]
    assert retriever["weights"] == {"bm25": 1.0, "dense": pytest.approx(best["retriever.weights.dense"], rel=1e-3)}


def test_tuning_fusion_on_test_is_refused_before_any_work(tmp_path: Path):
    runs = tmp_path / "runs"
    refused = run_python(
        *command(runs, "experiment=tune_fusion", "dataset=scifact", "hydra.sweeper.n_trials=1"), check=False
    )
    assert refused.returncode == 2 and "dataset=scifact (split 'test'): tuning is only offered on" in refused.stderr
    assert not (runs / "leaderboard.csv").exists() and not (runs / "cache").exists()


def test_sweep_with_default_runs_dir_writes_under_the_launch_folder(tmp_path: Path):
    run_python(str(PROJECT / "evaluate.py"), "-m", "retriever=bm25", "max_queries=3", cwd=tmp_path)
    [row] = rows(tmp_path / "runs")
    assert Path(row["run_path"]).is_absolute() and Path(row["run_path"]).is_relative_to(tmp_path / "runs")
