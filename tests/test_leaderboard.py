"""Leaderboard rows accumulate; a new measure widens the file without losing rows."""

from __future__ import annotations

import csv
from pathlib import Path

from rankbench.harness import leaderboard


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_append_and_widen(tmp_path: Path):
    path = tmp_path / "leaderboard.csv"
    leaderboard.append(path, {"dataset": "scifact", "system": "bm25", "nDCG@10": "0.6789", "total_s": "9.7"})
    leaderboard.append(path, {"dataset": "scifact", "system": "bm25", "nDCG@10": "0.6800", "total_s": "1.0"})
    leaderboard.append(path, {"dataset": "dl19", "system": "bm25", "AP(rel=2)": "0.30", "total_s": "2.0"})
    rows = rows_of(path)
    assert [r["nDCG@10"] for r in rows] == ["0.6789", "0.6800", ""]
    assert [r["AP(rel=2)"] for r in rows] == ["", "", "0.30"]
    with open(path, newline="") as f:
        header = next(csv.reader(f))
    assert header.index("nDCG@10") < header.index("AP(rel=2)") < header.index("total_s")
    assert header[: len(leaderboard.LEADING)] == leaderboard.LEADING
    assert not list(tmp_path.glob(".leaderboard.csv.tmp-*"))
