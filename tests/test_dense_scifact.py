"""Dense and hybrid retrieval on SciFact as users run them, against MTEB's published number.

One cache folder serves the module, so SciFact is encoded once (a minute or more: bf16 where the CPU has it).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import rankbench as rb
from rankbench.harness.leaderboard import compare_rows, latest, read_rows
from rankbench.harness.significance import Options
from tests.conftest import PROJECT, SHARED_DATA, cache_use, run_python


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dense") / "runs"


def evaluate(runs: Path, *overrides: str) -> dict[str, str]:
    """Run evaluate.py and return the leaderboard row it added."""
    run_python("evaluate.py", f"runs_dir={runs}", *overrides, timeout=1200)
    return read_rows(runs / "leaderboard.csv")[-1]


@pytest.mark.slow
def test_the_cheap_conditions_of_the_reproduction_matrix_hold(runs: Path):
    """BM25 flat and multifield against Pyserini's 2CR, MiniLM against MTEB, both hybrids beating both inputs:
    conf/reproduce.yaml's cheap tier, run as a user would (the command exits 1 when a value misses)."""
    done = run_python("-m", "harness.reproduce", "--tier", "cheap", "--runs", str(runs), timeout=1800)
    checks = [line for line in done.stdout.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(checks) == 11 and all("| ok |" in line for line in checks)
    for system in ("hybrid-rrf", "hybrid-linear"):  # only the fusion was computed: both inputs were cached
        assert cache_use(latest_row(runs, system)["run_path"]) == {"first-stage": {"built": 1, "hit": 2}}


def latest_row(runs: Path, system: str) -> dict[str, str]:
    return [row for row in read_rows(runs / "leaderboard.csv") if row["system"] == system][-1]


@pytest.mark.slow
def test_experiment_equals_evaluate_and_the_leaderboard_significance(runs: Path):
    commands = {
        "bm25": ["retriever=bm25"],
        "bm25_multifield": ["retriever=bm25_multifield"],  # on this module's board already (the matrix ran it)
        "dense": ["retriever=dense"],
        "hybrid-rrf": ["retriever=hybrid", "retriever.method=rrf"],
        "hybrid-linear": ["retriever=hybrid", "retriever.method=linear"],
    }
    for overrides in commands.values():  # kept when the test above ran them
        run_python("evaluate.py", f"runs_dir={runs}", *overrides, timeout=1200)
    systems = [
        rb.BM25(),
        rb.Retriever("bm25_multifield"),
        rb.Dense(),
        rb.Hybrid(method="rrf"),
        rb.Hybrid(method="linear"),
    ]
    frame = rb.experiment(systems, "scifact", baseline=0, runs_dir=runs, data_root=SHARED_DATA)
    assert list(frame.index) == list(commands)
    for system in commands:  # the very means evaluate.py recorded
        recorded = json.loads((Path(latest_row(runs, system)["run_path"]) / "metrics.json").read_text())
        assert {m: frame.loc[system, m] for m in recorded["measures"]} == recorded["measures"]

    rows = latest(read_rows(runs / "leaderboard.csv"))
    tests = compare_rows(rows, runs, ["bm25"], False, ["nDCG@10"], Options("holm", 10000, 0))
    by_system = {t.system["system"]: t.comparison for t in tests}
    assert set(by_system) == set(commands) - {"bm25"}  # the board's systems are the family: the same Holm
    for system, test in by_system.items():
        assert frame.loc[system, "nDCG@10 p_ttest"] == test.p_ttest
        assert frame.loc[system, "nDCG@10 p_rand"] == test.p_randomization
        assert frame.loc[system, "nDCG@10 p_holm"] == test.p_adjusted
        assert frame.loc[system, "nDCG@10 delta"] == pytest.approx(test.mean_delta, abs=1e-12)
        assert frame.loc[system, "nDCG@10 +"] == (test.deltas > 0).sum()
    printed = run_python("-m", "harness.leaderboard", "--runs", str(runs), "--baseline", "bm25", "--format", "csv")
    compared = printed.stdout.split("\n\n")[1]  # the comparisons, after the runs table
    table = {row["system"]: row for row in csv.DictReader(io.StringIO(compared))}
    for system in by_system:  # and what the command prints
        assert table[system]["p_holm"] == f"{frame.loc[system, 'nDCG@10 p_holm']:.4f}"


@pytest.mark.slow
def test_quickstart_runs_from_a_wheel_installed_outside_the_checkout(runs: Path, untrained_cross_encoder, tmp_path):
    """The wheel rankbench builds holds everything (code, configs, Java classes): imported from an install
    target, away from the checkout, it runs examples/quickstart.py on SciFact (reusing this module's caches)."""
    source = tmp_path / "source"  # the checkout's files as git would ship them, so no build/ lands in it
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in files:
        if (PROJECT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--quiet", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)], check=True
    )
    site = tmp_path / "site"
    (wheel,) = (tmp_path / "dist").glob("rankbench-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(PROJECT / "examples" / "quickstart.py", elsewhere / "quickstart.py")
    env = {"PYTHONPATH": str(site)}
    probe = "; ".join(
        [
            "import importlib.resources as r, rankbench, rankbench.harness.config as c",
            "print(rankbench.__file__, c.conf_dir() / 'config.yaml', c.conf_dir() / 'reranker' / 'listwise.yaml')",
            "print(r.files('rankbench.retrievers') / 'java/rankbench/PostingsExport.class')",
            "print(r.files('rankbench.harness') / 'log4j2.xml')",
        ]
    )
    shipped = [Path(p) for p in run_python("-c", probe, cwd=elsewhere, env=env).stdout.split()]
    assert len(shipped) == 5 and all(p.is_relative_to(site) and p.is_file() for p in shipped)
    args = ["--model", str(untrained_cross_encoder), "--queries", "20", "--runs", str(runs)]
    printed = run_python(str(elsewhere / "quickstart.py"), *args, cwd=elsewhere, env=env).stdout
    for name in ("BM25", "BM25 >> cross-encoder", "BM25 + dense (RRF)"):
        assert name in printed
    assert "nDCG@10 p_holm" in printed
