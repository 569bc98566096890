"""External runs: a TREC file scored as evaluate.py scores, put on the leaderboard, and tested like any run."""

from __future__ import annotations

import csv
import io
import json
import math
import zipfile
from pathlib import Path

import pytest

from rankbench.harness import external, leaderboard, significance
from rankbench.harness.errors import DataError
from rankbench.harness.experiment import run_experiment
from tests.conftest import SHARED_DATA, write_beir

N = 12
# Each query's word is repeated in a short non-relevant document and said once in a long relevant one, so
# BM25 puts the non-relevant document first: nDCG@10 = 1 / log2(3) on every query, short of a perfect run.
DOCS = [{"_id": f"rel{i}", "title": "", "text": f"w{i} " + " ".join(f"pad{j}" for j in range(30))} for i in range(N)]
DOCS += [{"_id": f"bad{i}", "title": "", "text": f"w{i} w{i} w{i}"} for i in range(N)]
QUERIES = [{"_id": f"q{i}", "text": f"w{i}"} for i in range(N)]
QRELS = [(f"q{i}", f"rel{i}", 1) for i in range(N)]


@pytest.fixture
def data(tmp_path: Path) -> str:
    return f"dataset.path={write_beir(tmp_path / 'beir', docs=DOCS, queries=QUERIES, qrels=QRELS)}"


def write_run(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def perfect(path: Path) -> Path:
    """The relevant document first for every query, the decoy second."""
    return write_run(
        path,
        [
            f"q{i} Q0 {d} {r} {s} by-hand"
            for i in range(N)
            for r, (d, s) in enumerate([(f"rel{i}", 2.0), (f"bad{i}", 1.0)], 1)
        ],
    )


def perquery(run_dir: Path) -> dict[str, dict[str, float]]:
    with open(run_dir / "perquery.csv", newline="") as f:
        return {row.pop("qid"): {m: float(v) for m, v in row.items()} for row in csv.DictReader(f)}


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = leaderboard.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_an_imported_run_scores_as_evaluate_py_did_and_is_tested_like_any_run(
    tmp_path: Path, make_cfg, data: str, capsys
):
    """One BM25 run (the JVM is the slow part): its run.trec imported scores as evaluate.py scored it, and a
    perfect run imported beside it is tested against the BM25 row, in the table and the report."""
    bm25 = run_experiment(make_cfg(data))
    runs = tmp_path / "runs"
    code, out, err = cli(
        capsys,
        "import",
        str(bm25.run_dir / "run.trec"),
        "--dataset",
        "scifact",
        "--name",
        "copy",
        "--runs",
        str(runs),
        "--set",
        data,
    )
    assert code == 0, err
    assert out.startswith("imported: ")
    (row,) = [r for r in leaderboard.read_rows(runs / "leaderboard.csv") if r["system"] == "copy"]
    assert row["external"] == "true" and row["retriever"] == "external" and row["num_queries"] == str(N)
    assert perquery(Path(row["run_path"])) == perquery(bm25.run_dir)  # every measure, every query
    assert perquery(bm25.run_dir)["q0"]["nDCG@10"] == pytest.approx(1 / math.log2(3))
    recorded = json.loads((Path(row["run_path"]) / "metrics.json").read_text())
    assert recorded["measures"] == bm25.metrics and recorded["external"]["tags"] == ["bm25"]
    bm25_row = next(r for r in leaderboard.read_rows(runs / "leaderboard.csv") if r["system"] == "bm25")
    assert bm25_row["external"] == ""  # a run rankbench made is not external

    # ... and is tested against the BM25 row like any run
    argv = ["import", str(perfect(tmp_path / "p.trec")), "--dataset", "scifact", "--name", "oracle"]
    assert cli(capsys, *argv, "--runs", str(runs), "--set", data)[0] == 0
    code, out, err = cli(
        capsys, "--runs", str(runs), "--baseline", "bm25", "--ci", "--resamples", "1000", "--format", "csv"
    )
    assert code == 0, err
    compared = {r["system"]: r for r in csv.DictReader(io.StringIO(out.split("\n\n")[1]))}
    assert set(compared) == {"copy", "oracle"} and {r["baseline"] for r in compared.values()} == {"bm25"}
    assert float(compared["copy"]["delta"]) == 0.0 and float(compared["copy"]["p_rand"]) == 1.0
    row = compared["oracle"]
    assert row["paired"] == str(N)
    assert float(row["delta"]) == pytest.approx(1 - 1 / math.log2(3), abs=1e-4)
    # Every query gains the same: 2 of the 2**12 sign vectors are as extreme, p = 2 / 4096.
    assert float(row["p_rand"]) == pytest.approx(2 / 2**N, abs=1e-4) and row["sig"] == "*"
    page = tmp_path / "report.html"
    assert cli(capsys, "--runs", str(runs), "--baseline", "bm25", "--report", str(page))[0] == 0
    assert "oracle vs bm25: nDCG@10" in page.read_text()


def test_reimport_is_kept_and_a_changed_file_is_a_new_row(tmp_path: Path, data: str, capsys):
    runs, run = tmp_path / "runs", perfect(tmp_path / "perfect.trec")
    argv = ["import", str(run), "--dataset", "scifact", "--name", "oracle", "--runs", str(runs), "--set", data]
    assert cli(capsys, *argv)[0] == 0
    first = leaderboard.read_rows(runs / "leaderboard.csv")
    assert len(first) == 1 and float(first[0]["nDCG@10"]) == 1.0
    code, out, _ = cli(capsys, *argv)
    assert code == 0 and out.startswith("already imported (same content), kept")
    assert leaderboard.read_rows(runs / "leaderboard.csv") == first
    (runs / "leaderboard.csv").unlink()  # a lost row comes back from the run folder
    assert cli(capsys, *argv)[0] == 0 and leaderboard.read_rows(runs / "leaderboard.csv") == first
    lines = run.read_text().splitlines()
    write_run(run, [line for line in lines if not line.startswith("q0 ")])  # q0 dropped: it now scores 0 there
    assert cli(capsys, *argv)[0] == 0
    rows = leaderboard.read_rows(runs / "leaderboard.csv")
    assert len(rows) == 2 and rows[0]["config_hash"] != rows[1]["config_hash"]
    assert float(rows[1]["nDCG@10"]) == pytest.approx((N - 1) / N, abs=1e-4)
    assert perquery(Path(rows[1]["run_path"]))["q0"]["nDCG@10"] == 0.0


@pytest.mark.parametrize(
    "lines, message",
    [
        (["q0 Q0 rel0 1 2.0"], ":1: expected 6 columns (qid Q0 docid rank score tag), got 5"),
        (["q0 Q0 rel0 1 2.0 t", "", "q1 Q0 rel1 first 2.0 t"], ":3: rank 'first' is not an integer"),
        (["q0 Q0 rel0 1 high t"], ":1: score 'high' is not a number"),
        (["q0 Q0 rel0 1 nan t"], ":1: score 'nan' is not a finite number"),
        (
            ["q0 Q0 rel0 1 2.0 t", "q0 Q0 bad0 2 1.0 t", "q0 Q0 rel0 3 0.5 t"],
            ":3: document 'rel0' appears twice for query 'q0' (first at line 1)",
        ),
        (
            ["q0 Q0 rel0 1 2.0 t", "x7 Q0 rel0 1 2.0 t", "x8 Q0 rel0 1 2.0 t"],
            ": 2 queries are not among the dataset's 12 judged queries: 'x7' (line 2), 'x8' (line 3)",
        ),
        ([""], " holds no hits"),
    ],
)
def test_malformed_run_files_are_named_by_file_and_line(
    tmp_path: Path, data: str, capsys, lines: list[str], message: str
):
    run = write_run(tmp_path / "bad.trec", lines)
    runs = tmp_path / "runs"
    code, out, err = cli(
        capsys, "import", str(run), "--dataset", "scifact", "--name", "x", "--runs", str(runs), "--set", data
    )
    assert code == 2 and out == ""
    assert f"error: {run}{message}" in err
    assert not (runs / "leaderboard.csv").exists()  # nothing half-imported


def test_missing_file_and_bad_name(tmp_path: Path, data: str, capsys):
    code, _, err = cli(
        capsys, "import", str(tmp_path / "nope.trec"), "--dataset", "scifact", "--name", "x", "--set", data
    )
    assert code == 2 and f"run file {tmp_path / 'nope.trec'} does not exist" in err
    run = perfect(tmp_path / "p.trec")
    code, _, err = cli(capsys, "import", str(run), "--dataset", "scifact", "--name", "a/b", "--set", data)
    assert code == 2 and "--name must be a plain folder name, got 'a/b'" in err


def test_ties_rank_by_score_then_the_files_rank(tmp_path: Path):
    run = write_run(tmp_path / "r.trec", ["q0 Q0 b 2 1.0 t", "q0 Q0 a 1 1.0 t", "q0 Q0 c 3 5.0 t"])
    parsed, tags = external.read_run(run, {"q0"})
    assert parsed == {"q0": [("c", 5.0), ("a", 1.0), ("b", 1.0)]} and tags == {"t"}
    with pytest.raises(DataError, match=r"1 queries are not among the dataset's 1 judged queries: 'q0' \(line 1\)"):
        external.read_run(run, {"q9"})


@pytest.mark.slow
def test_a_run_written_from_scifact_qrels(tmp_path: Path, capsys, monkeypatch):
    """On the offline SciFact test set: every judged document at the top scores 1 on every measure; the
    same documents pushed below ten non-relevant ones score 0 on nDCG@10 and RR@10, and lose to it."""
    monkeypatch.setenv("RANKBENCH_DATA_ROOT", str(SHARED_DATA))
    with zipfile.ZipFile(SHARED_DATA / "beir" / "scifact.zip") as z:
        qrels = [line.split("\t") for line in z.read("scifact/qrels/test.tsv").decode().splitlines()[1:]]
    top = [f"{q} Q0 {d} 1 {10 + int(r)} qrels" for q, d, r in qrels]
    fillers = [f"{q} Q0 filler{j} {j} {100 - j} x" for q in dict.fromkeys(q for q, _, _ in qrels) for j in range(10)]
    below = fillers + [f"{q} Q0 {d} 20 {int(r)} x" for q, d, r in qrels]
    runs = tmp_path / "runs"
    for name, lines in (("oracle", top), ("buried", below)):
        argv = ["import", str(write_run(tmp_path / f"{name}.trec", lines)), "--dataset", "scifact", "--name", name]
        code, _, err = cli(capsys, *argv, "--runs", str(runs))
        assert code == 0, err
    rows = {r["system"]: r for r in leaderboard.read_rows(runs / "leaderboard.csv")}
    assert rows["oracle"]["num_queries"] == "300"
    assert all(float(rows["oracle"][m]) == 1.0 for m in ("nDCG@10", "R@100", "R@1000", "RR@10", "AP"))
    assert float(rows["buried"]["nDCG@10"]) == 0.0 and float(rows["buried"]["R@100"]) == 1.0
    code, out, _ = cli(capsys, "--runs", str(runs), "--baseline", "buried", "--format", "csv")
    (row,) = csv.DictReader(io.StringIO(out.split("\n\n")[1]))
    assert row["system"] == "oracle" and float(row["delta"]) == 1.0 and row["sig"] == "*"
    oracle = significance.read_perquery(Path(rows["oracle"]["run_path"]) / "perquery.csv", "nDCG@10")
    assert len(oracle) == 300 and set(oracle.values()) == {1.0}
