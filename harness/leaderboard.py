"""runs/leaderboard.csv: one row per completed run, safe for concurrent writers.

Appends hold a file lock. When a row brings a column the file lacks (a new measure), the
file is rewritten atomically with the union of columns, earlier rows left blank there.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from filelock import FileLock

from harness.cache import write_text_atomic

LEADING = ["timestamp", "dataset", "retriever", "reranker", "system", "config_hash", "git_commit"]
LEADING += ["max_queries", "num_queries"]
TRAILING = ["index_s", "retrieve_s", "rerank_s", "total_s", "peak_rss_mb", "run_path"]


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _columns(existing: list[str], row: dict[str, Any]) -> list[str]:
    measures = [c for c in [*existing, *row] if c not in LEADING and c not in TRAILING]
    return LEADING + list(dict.fromkeys(measures)) + TRAILING


def append(path: Path, row: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        header: list[str] = []
        if path.is_file():
            with open(path, newline="", encoding="utf-8") as f:
                header = next(csv.reader(f), [])
        columns = _columns(header, row)
        if columns == header:
            with open(path, "a", newline="", encoding="utf-8") as f:
                csv.DictWriter(f, columns).writerow(row)
            return
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, columns)
        writer.writeheader()
        writer.writerows([*read_rows(path), row])
        write_text_atomic(path, buffer.getvalue())
