"""Reranker scores per (query, document), kept across runs in one SQLite file per reranker.

Scoring pairs is the expensive part of reranking, and sweeps revisit the same pairs (a
deeper rerank, a repeated run, another first stage that retrieves the same documents).
SQLite gives atomic commits and safe concurrent writers from parallel sweep jobs. The file
records its key (reranker config + corpus fingerprint); a file with another key, or one
that fails SQLite's integrity check, is discarded and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rankbench.harness.cache import key_hash

log = logging.getLogger(__name__)


def _query_digest(text: str) -> str:
    """Scores depend on the query text, not only its id (topic files get revised)."""
    return hashlib.sha1(text.encode()).hexdigest()[:16]


class ScoreCache:
    def __init__(self, root: Path, key: dict[str, Any]):
        root.mkdir(parents=True, exist_ok=True)
        self.path = root / f"{key_hash(key)}.sqlite"
        self._key = json.dumps(key, sort_keys=True)
        problem = self._open()
        if problem:
            log.warning("score cache %s is stale or corrupt (%s): rebuilding", self.path, problem)
            self._db.close()
            self.path.unlink(missing_ok=True)
            self._open()

    def _open(self) -> str | None:
        self._db = sqlite3.connect(self.path, timeout=120)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            if self._db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                return "integrity check failed"
            with self._db:
                self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT NOT NULL)")
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS scores (qid TEXT, qhash TEXT, docid TEXT, score REAL,"
                    " PRIMARY KEY (qid, qhash, docid))"
                )
                stored = self._db.execute("SELECT key FROM meta").fetchone()
                if stored is None:
                    self._db.execute("INSERT INTO meta VALUES (?)", (self._key,))
                elif stored[0] != self._key:
                    return "key differs"
        except sqlite3.DatabaseError as e:
            return str(e)
        return None

    def get(self, qid: str, text: str, docids: list[str]) -> dict[str, float]:
        """Cached scores for those of ``docids`` that have one."""
        qhash = _query_digest(text)
        found: dict[str, float] = {}
        for start in range(0, len(docids), 500):  # stay under SQLite's bound-parameter limit
            chunk = docids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT docid, score FROM scores WHERE qid=? AND qhash=? AND docid IN ({marks})",
                (qid, qhash, *chunk),
            )
            found.update(rows.fetchall())
        return found

    def put(self, qid: str, text: str, scores: Mapping[str, float]) -> None:
        qhash = _query_digest(text)
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?)",
                [(qid, qhash, docid, float(score)) for docid, score in scores.items()],
            )

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM scores").fetchone()[0]

    def close(self) -> None:
        self._db.close()
