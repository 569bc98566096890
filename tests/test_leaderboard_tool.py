"""The leaderboard tool: significance against scipy and by hand, the CLI, and the HTML report in Chromium."""

from __future__ import annotations

import base64
import csv
import io
import math
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from rankbench.harness import leaderboard, significance

PROJECT = Path(__file__).resolve().parent.parent
QIDS = [f"q{i}" for i in range(1, 31)]


def make_run(
    runs: Path,
    system: str,
    config_hash: str,
    perquery: dict[str, dict[str, float]],
    dataset: str = "scifact",
    timestamp: str = "2026-01-01T00:00:00+00:00",
    retrieve_s: float = 1.0,
) -> None:
    """A run folder holding perquery.csv, and its leaderboard row (means of the per-query values)."""
    folder = runs / dataset / system / config_hash
    folder.mkdir(parents=True, exist_ok=True)
    measures = list(next(iter(perquery.values())))
    with open(folder / "perquery.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["qid", *measures])
        writer.writerows([qid, *(f"{v[m]:.6f}" for m in measures)] for qid, v in perquery.items())
    row = {"timestamp": timestamp, "dataset": dataset, "retriever": system, "reranker": "none", "system": system}
    row |= {"config_hash": config_hash, "git_commit": "abc", "max_queries": "", "num_queries": len(perquery)}
    row |= {m: f"{np.mean([v[m] for v in perquery.values()]):.4f}" for m in measures}
    row |= {"index_s": "0.5", "retrieve_s": f"{retrieve_s:.3f}", "rerank_s": "0.000", "total_s": "2.0"}
    row |= {"peak_rss_mb": "100", "run_path": str(folder)}
    leaderboard.append(runs / "leaderboard.csv", row)


def values(seed: int, shift: float = 0.0, qids: list[str] = QIDS) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(seed)
    ndcg = np.clip(rng.uniform(0.2, 0.8, len(qids)) + shift, 0, 1)
    recall = np.clip(rng.uniform(0.5, 1.0, len(qids)) + shift / 2, 0, 1)
    return {q: {"nDCG@10": float(n), "R@100": float(r)} for q, n, r in zip(qids, ndcg, recall, strict=True)}


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """scifact: base, better (clearly), close (about equal, no q30), an old and a new row of one hash; nfcorpus."""
    runs = tmp_path / "runs"
    base = values(1)
    make_run(runs, "base", "aaaa00000001", base, retrieve_s=0.3)
    gain = dict(zip(QIDS, np.random.default_rng(5).uniform(0.05, 0.25, len(QIDS)), strict=True))
    better = {q: {m: min(1.0, v + gain[q]) for m, v in mv.items()} for q, mv in base.items()}
    make_run(runs, "better", "bbbb00000002", better, retrieve_s=3.0)
    close = {q: {m: v + (0.01 if i % 2 else -0.008) for m, v in mv.items()} for i, (q, mv) in enumerate(base.items())}
    make_run(runs, "close", "cccc00000003", {q: close[q] for q in QIDS[:-1]}, retrieve_s=1.0)
    make_run(runs, "rerun", "dddd00000004", values(2, -0.3), timestamp="2026-01-01T00:00:00+00:00")
    make_run(runs, "rerun", "dddd00000004", values(2, 0.05), timestamp="2026-01-02T00:00:00+00:00")
    make_run(runs, "base", "eeee00000005", values(3), dataset="nfcorpus")
    return runs


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = leaderboard.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def parse_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def two_tables(text: str) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The runs table and, after the blank line, the comparisons table of CSV output."""
    runs, compared = text.split("\n\n")
    return parse_csv(runs), parse_csv(compared)


def by_pair(rows: list[dict[str, str]]) -> dict[tuple[str, str, str], dict[str, str]]:
    return {(r["system"], r["baseline"], r["measure"]): r for r in rows}


# --- significance ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ttest_matches_scipy(seed: int):
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(size=25), rng.uniform(size=25)
    assert significance.paired_ttest(a, b) == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-12)


def test_ttest_degenerate_cases():
    assert significance.paired_ttest(np.array([0.5, 0.7]), np.array([0.5, 0.7])) == 1.0
    assert math.isnan(significance.paired_ttest(np.array([0.5]), np.array([0.1])))


def scipy_exact(d: np.ndarray) -> float:
    result = stats.permutation_test(
        (d,), np.mean, permutation_type="samples", n_resamples=np.inf, alternative="two-sided", vectorized=True
    )
    return float(result.pvalue)


@pytest.mark.parametrize(
    "a, b",
    [
        ([0.1, 0.5, 0.9, 0.3, 0.7], [0.2, 0.1, 0.4, 0.3, 0.2]),
        ([1, 0, 1, 1, 0.5, 1, 0, 1], [0, 0, 0.5, 1, 0.5, 0, 0, 0]),  # ties and zero differences, as IR scores have
        (
            [0.3, 0.2, 0.8, 0.5, 0.1, 0.9, 0.4, 0.6, 0.7, 0.35, 0.15],
            [0.25, 0.3, 0.6, 0.5, 0.2, 0.7, 0.1, 0.6, 0.5, 0.3, 0.2],
        ),
    ],
)
def test_randomization_exact_matches_scipy(a: list[float], b: list[float]):
    a_, b_ = np.array(a, float), np.array(b, float)
    assert 2 ** len(a) <= 10000  # the default takes the exact path here
    assert significance.randomization_test(a_, b_) == pytest.approx(scipy_exact(a_ - b_), rel=1e-12)


def test_randomization_sampled_close_to_exact_and_seeded():
    rng = np.random.default_rng(7)
    a, b = rng.uniform(size=16), rng.uniform(size=16)
    exact = scipy_exact(a - b)  # 2**16 sign vectors
    permutations = 20000  # < 2**16: sampled
    p = significance.randomization_test(a, b, permutations, seed=3)
    assert abs(p - exact) < 4 * math.sqrt(exact * (1 - exact) / permutations) + 1 / permutations
    assert p == significance.randomization_test(a, b, permutations, seed=3)
    assert p != significance.randomization_test(a, b, permutations, seed=4)


def test_randomization_zero_mean_difference():
    a = np.array([0.1, 0.2, 0.3])
    assert significance.randomization_test(a, a.copy()) == 1.0
    # Differences 0.1, -0.2, 0.2, 0.1, -0.2, 0 sum to 0 (-5.6e-17 in floats): every sign vector is as
    # extreme, so p = 1. A tolerance relative to the observed sum alone gave 0.9375 here.
    a, b = np.array([0.7, 0.1, 0.3, 0.9, 0.2, 0.6]), np.array([0.6, 0.3, 0.1, 0.8, 0.4, 0.6])
    assert significance.randomization_test(a, b) == 1.0


def test_holm_hand_worked():
    # p = [0.01, 0.04, 0.03, 0.005], m = 4. Ascending: 0.005, 0.01, 0.03, 0.04.
    #   step 1: 4 * 0.005 = 0.02
    #   step 2: 3 * 0.01  = 0.03
    #   step 3: 2 * 0.03  = 0.06
    #   step 4: 1 * 0.04  = 0.04 -> raised to 0.06 (adjusted p never decreases along the steps)
    # Back in input order: [0.03, 0.06, 0.06, 0.02].
    assert significance.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # m = 2 (NaN is untested, not counted): 2 * 0.4 = 0.8; 1 * 0.5 -> 0.8. And 2 * 0.6 = 1.2 is capped at 1.
    adjusted = significance.holm([0.5, math.nan, 0.4])
    assert adjusted[0] == pytest.approx(0.8) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.8)
    assert significance.holm([0.6, 0.7]) == [1.0, 1.0]


# --- CLI ------------------------------------------------------------------------------------


def test_latest_row_per_hash_filter_and_default_sort(runs: Path, capsys):
    code, out, _ = cli(capsys, "--runs", str(runs), "--dataset", "scifact", "--format", "csv")
    assert code == 0
    rows = parse_csv(out)
    assert sorted(r["system"] for r in rows) == ["base", "better", "close", "rerun"]
    ndcg = [float(r["nDCG@10"]) for r in rows]
    assert ndcg == sorted(ndcg, reverse=True) and rows[0]["system"] == "better"  # nDCG@10, descending
    assert {r["dataset"] for r in rows} == {"scifact"}
    rerun = next(r for r in rows if r["system"] == "rerun")
    assert float(rerun["nDCG@10"]) > 0.5  # the 2026-01-02 row, not the earlier one
    assert float(rows[0]["ms/query"]) == pytest.approx(100.0)  # 3.0 s / 30 queries


def test_sort_by_other_measure_and_markdown(runs: Path, capsys):
    code, out, _ = cli(capsys, "--runs", str(runs), "--sort", "R@100")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("| dataset | system | config_hash |") and set(lines[1]) <= set("|- ")
    body = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert [r[0] for r in body] == ["nfcorpus"] + ["scifact"] * 4
    recall = [float(r[5]) for r in body[1:]]
    assert recall == sorted(recall, reverse=True)


def test_significance_table(runs: Path, capsys):
    code, out, _ = cli(capsys, "--runs", str(runs), "--dataset", "scifact", "--baseline", "base", "--format", "csv")
    assert code == 0
    listed, compared = two_tables(out)
    assert len(listed) == 4 and "p_holm" not in listed[0]  # the runs table is the plain one
    rows = {r["system"]: r for r in compared}
    assert set(rows) == {"better", "close", "rerun"} and {r["baseline"] for r in compared} == {"base"}
    assert {r["measure"] for r in compared} == {"nDCG@10"}  # default: the sort measure
    assert rows["better"]["sig"] == "*" and rows["better"]["paired"] == "30"
    assert rows["close"]["paired"] == "29"  # q30 is missing from that run
    assert float(rows["better"]["delta"]) > 0.1
    # The CLI's p-values are those of the module on the saved per-query values.
    base = significance.read_perquery(runs / "scifact/base/aaaa00000001/perquery.csv", "nDCG@10")
    close = significance.read_perquery(runs / "scifact/close/cccc00000003/perquery.csv", "nDCG@10")
    compared_close = significance.compare(close, base)
    assert float(rows["close"]["p_ttest"]) == pytest.approx(compared_close.p_ttest, abs=1e-4)
    assert float(rows["close"]["p_rand"]) == pytest.approx(compared_close.p_randomization, abs=1e-4)
    tested = [float(rows[s]["p_rand"]) for s in ("better", "close", "rerun")]
    assert [float(rows[s]["p_holm"]) for s in ("better", "close", "rerun")] == pytest.approx(
        significance.holm(tested), abs=1e-4
    )


def test_baseline_by_config_hash_and_measure(runs: Path, capsys):
    argv = ["--runs", str(runs), "--dataset", "scifact", "--baseline", "cccc00000003", "--measure", "R@100"]
    code, out, _ = cli(capsys, *argv, "--format", "csv")
    assert code == 0
    _, compared = two_tables(out)
    assert {(r["baseline"], r["baseline_hash"], r["measure"]) for r in compared} == {("close", "cccc00000003", "R@100")}
    assert {r["system"] for r in compared} == {"base", "better", "rerun"}


@pytest.mark.parametrize("correction, theirs", [("holm", "holm"), ("bonferroni", "bonferroni"), ("bh", "fdr_bh")])
def test_several_baselines_and_measures_one_family_per_measure(runs: Path, capsys, correction: str, theirs: str):
    argv = ["--runs", str(runs), "--dataset", "scifact", "--baseline", "base", "--baseline", "close"]
    argv += ["--measure", "nDCG@10", "--measure", "R@100", "--correction", correction, "--format", "csv"]
    code, out, _ = cli(capsys, *argv)
    assert code == 0
    _, compared = two_tables(out)
    assert len(compared) == 2 * 3 * 2  # (base, close) x three others each x two measures
    pairs = by_pair(compared)
    assert ("close", "base", "R@100") in pairs and ("base", "close", "nDCG@10") in pairs
    for measure in ("nDCG@10", "R@100"):
        family = [r for r in compared if r["measure"] == measure]
        expected = multipletests([float(r["p_rand"]) for r in family], method=theirs)[1]
        assert [float(r[f"p_{correction}"]) for r in family] == pytest.approx(list(expected), abs=1e-4)


def test_all_pairs_and_no_correction(runs: Path, capsys):
    argv = ["--runs", str(runs), "--dataset", "scifact", "--all-pairs", "--correction", "none", "--format", "csv"]
    code, out, _ = cli(capsys, *argv)
    assert code == 0
    listed, compared = two_tables(out)
    assert len(compared) == 6  # 4 runs: every unordered pair once
    assert {frozenset((r["system"], r["baseline"])) for r in compared} == {
        frozenset((a["system"], b["system"])) for i, a in enumerate(listed) for b in listed[i + 1 :]
    }
    ranked = [r["system"] for r in listed]  # best first; each run is tested against those ranked below it
    assert all(ranked.index(r["system"]) < ranked.index(r["baseline"]) for r in compared)
    assert not any(c.startswith("p_") and c not in ("p_ttest", "p_rand") for c in compared[0])
    assert all((r["sig"] == "*") == (float(r["p_rand"]) < 0.05) for r in compared)


def test_bootstrap_intervals_per_run_and_per_delta(runs: Path, capsys):
    argv = ["--runs", str(runs), "--dataset", "scifact", "--baseline", "base", "--ci", "--resamples", "2000"]
    code, out, _ = cli(capsys, *argv, "--seed", "3", "--format", "csv")
    assert code == 0
    listed, compared = two_tables(out)
    better = next(r for r in listed if r["system"] == "better")
    per_query = significance.read_perquery(runs / "scifact/better/bbbb00000002/perquery.csv", "nDCG@10")
    low, high = significance.bootstrap_ci(np.array(list(per_query.values())), 2000, 3)
    assert (float(better["nDCG@10 ci_low"]), float(better["nDCG@10 ci_high"])) == pytest.approx((low, high), abs=1e-4)
    assert float(better["nDCG@10 ci_low"]) < float(better["nDCG@10"]) < float(better["nDCG@10 ci_high"])
    row = by_pair(compared)[("better", "base", "nDCG@10")]
    base = significance.read_perquery(runs / "scifact/base/aaaa00000001/perquery.csv", "nDCG@10")
    expected = significance.compare(per_query, base, seed=3, resamples=2000)
    assert (float(row["ci_low"]), float(row["ci_high"])) == pytest.approx((expected.ci_low, expected.ci_high), abs=1e-4)
    assert 0 < float(row["ci_low"]) < float(row["delta"]) < float(row["ci_high"])  # a clear gain excludes 0


def test_latex_format(runs: Path, capsys):
    code, out, _ = cli(capsys, "--runs", str(runs), "--dataset", "scifact", "--baseline", "base", "--format", "latex")
    assert code == 0
    tables = out.split("\n\n")
    assert len(tables) == 2 and all(t.startswith("\\begin{tabular}") for t in tables)
    assert all(t.rstrip().endswith("\\end{tabular}") for t in tables)
    assert "dataset & system & config\\_hash & queries & nDCG@10" in tables[0]
    assert "p\\_holm" in tables[1] and "\\toprule" in tables[1]
    body = [line for line in tables[0].splitlines() if line.startswith("scifact & ")]
    assert len(body) == 4 and all(line.endswith(" \\\\") and line.count(" & ") == 8 for line in body)


def test_module_entry_point(runs: Path):
    done = subprocess.run(
        [sys.executable, "-m", "rankbench.harness.leaderboard", "--runs", str(runs), "--format", "csv"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert len(parse_csv(done.stdout)) == 5


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--baseline", "nosuch"], "unknown baseline 'nosuch'; systems (config hash) are: base (aaaa00000001)"),
        (["--sort", "MAP"], "unknown measure 'MAP' for --sort; available: nDCG@10, R@100"),
        (["--baseline", "base", "--measure", "P@5"], "unknown measure 'P@5' for --measure; available: nDCG@10"),
        (["--baseline", "rerun", "--dataset", "nope"], "no runs of dataset 'nope'"),
        (["--baseline", "base"], "baseline 'base' names 2 runs on scifact"),
        (["--all-pairs", "--baseline", "rerun"], "pass it or --baseline, not both"),
        (["--ci", "--resamples", "0"], "--resamples must be at least 1, got 0"),
    ],
)
def test_errors_name_what_is_missing(runs: Path, capsys, argv: list[str], message: str):
    if argv == ["--baseline", "base"]:
        make_run(runs, "base", "ffff00000006", values(9))  # a second config under the same system name
    code, out, err = cli(capsys, "--runs", str(runs), *argv)
    assert code == 2 and out == ""
    assert message in err


def test_error_names_missing_files(tmp_path: Path, runs: Path, capsys):
    code, _, err = cli(capsys, "--runs", str(tmp_path / "empty"))
    assert code == 2 and str(tmp_path / "empty" / "leaderboard.csv") in err
    missing = runs / "scifact/close/cccc00000003/perquery.csv"
    missing.unlink()
    code, _, err = cli(capsys, "--runs", str(runs), "--baseline", "aaaa00000001")
    assert code == 2 and f"per-query file {missing} is missing" in err
    make_run(runs, "close", "cccc00000003", {q: {"AP": 0.5} for q in QIDS})
    code, _, err = cli(capsys, "--runs", str(runs), "--baseline", "aaaa00000001")
    assert code == 2 and "has no column 'nDCG@10'; it has: AP" in err


# --- HTML report ----------------------------------------------------------------------------


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which the PNG format puts first."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_report_renders_in_chromium(runs: Path, tmp_path: Path, capsys):
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).is_file():
        pytest.fail("Chromium is needed to check the HTML report: install it with `apt-get install -y chromium`")
    page = tmp_path / "out" / "report.html"
    argv = ["--runs", str(runs), "--baseline", "base", "--dataset", "scifact", "--ci", "--resamples", "500"]
    code, _, err = cli(capsys, *argv, "--report", str(page))
    assert code == 0, err
    text = page.read_text()
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", text)  # self-contained: nothing fetched
    for system in ("base", "better", "close", "rerun"):
        assert re.search(rf"<tr[^>]*><td>scifact</td><td>{system}</td>", text)
    images = [base64.b64decode(m) for m in re.findall(r'<img src="data:image/png;base64,([^"]+)"', text)]
    assert len(images) == 4  # the scatter plot, and one delta chart per system compared
    for image in images:
        width, height = png_size(image)
        assert len(image) > 5000 and width > 300 and height > 100
    assert re.search(
        r"30 paired queries: 30 wins, 0 ties, 0 losses; mean Δ \+0\.\d+ \(95% CI \+0\.\d+ to \+0\.\d+\)", text
    )
    assert "95% BCa bootstrap intervals" in text and "<th>nDCG@10 ci_low</th>" in text
    assert "<h2>Comparisons</h2>" in text and "Holm over the comparisons on each dataset and measure" in text
    assert re.search(r"<td>better</td><td>bbbb00000002</td><td>base</td><td>aaaa00000001</td><td>nDCG@10</td>", text)

    shot = tmp_path / "shot.png"
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            f"--screenshot={shot}",
            "--window-size=1280,2000",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.is_file(), f"no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    assert png_size(shot.read_bytes()) == (1280, 2000) and shot.stat().st_size > 20000
