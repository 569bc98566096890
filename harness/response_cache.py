"""LLM answers on disk, so a repeated run makes no calls.

Keyed by the backend's identity (model, weights or endpoint) in the file name and by the
hash of (messages, decoding settings) per row. SQLite commits each answer atomically, so a
killed run keeps what it paid for; a file that fails the integrity check is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

from rankbench.harness.cache import key_hash

log = logging.getLogger(__name__)


def request_key(messages: list[dict[str, str]], decoding: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps([messages, decoding], sort_keys=True).encode()).hexdigest()


class ResponseCache:
    """Thread-safe: queries run concurrently against an HTTP backend."""

    def __init__(self, root: Path, identity: dict[str, str]):
        root.mkdir(parents=True, exist_ok=True)
        self.path = root / f"{key_hash(identity)}.sqlite"
        self._lock = threading.Lock()
        self._db = self._open()
        if self._db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            log.warning("response cache %s is corrupt: rebuilding", self.path)
            self._db.close()
            self.path.unlink()
            self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, timeout=120, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, answer TEXT NOT NULL)")
        except sqlite3.DatabaseError as e:
            log.warning("response cache %s is unreadable (%s): rebuilding", self.path, e)
            self.path.unlink(missing_ok=True)
            db = sqlite3.connect(self.path, timeout=120, check_same_thread=False)
            db.execute("CREATE TABLE answers (key TEXT PRIMARY KEY, answer TEXT NOT NULL)")
        return db

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT answer FROM answers WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, answer: dict[str, Any]) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?)", (key, json.dumps(answer)))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def close(self) -> None:
        self._db.close()
