"""A document store per corpus: fetch k documents by id without reading the collection.

Rerankers, training and reports need the texts of a few hundred retrieved documents; scanning
an 8.8M-passage collection for them costs minutes per call. The store is built once per corpus
fingerprint, on the first ``get_many``, into ``<cache_dir>/docstore/<key>/docs.sqlite`` through
harness/cache.py: built under a temporary name, published with a manifest, and rebuilt when a
later lookup finds it stale or corrupt. A changed corpus has another fingerprint, so another key.

Why SQLite, a plain rowid table with a unique index on docid (benchmarks/docstore.md): at 1M
documents it fetches 100 random documents in 1.3-1.4 ms (median of two runs on a loaded 2-core
machine; the requirement is 10 ms), in one stdlib file that takes any docid. A hand-made offsets
index (sorted fixed-width docids + pread) fetched in 0.9-1.6 ms and built about 25% faster, but
needs its own file format and sizes its docid array by the longest id (Wikipedia titles in
FEVER/HotpotQA). ``WITHOUT ROWID`` lost: passage-sized rows overflow its B-tree pages (2x the
disk, 4-6x slower fetches).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path

from tqdm import tqdm

from rankbench.harness import cache
from rankbench.harness.errors import DataError
from rankbench.harness.types import Doc

log = logging.getLogger(__name__)

FORMAT_VERSION = 1  # part of the key: a change of schema rebuilds every store
FILE = "docs.sqlite"
_INSERT_BATCH = 10_000
_SELECT_BATCH = 500  # ids per query, well under SQLite's bound-parameter limit


def store_key(fingerprint: str) -> dict[str, object]:
    """The cache key of a corpus's store: its content fingerprint and the store format."""
    return {"kind": "docstore", "format": FORMAT_VERSION, "corpus": fingerprint}


class DocStore:
    """Read-only lookups in one built store; safe to share between threads, reopened after a fork."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._pid = -1
        self._db: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None or self._pid != os.getpid():  # a forked child must not use its parent's handle
            uri = f"file:{self.path}?mode=ro&immutable=1"  # published stores never change: no locking
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self._pid = os.getpid()
        return self._db

    def get_many(self, docids: Iterable[str]) -> dict[str, Doc]:
        """The documents with these ids; ids the corpus lacks are absent from the result."""
        wanted = list(dict.fromkeys(docids))
        found: dict[str, Doc] = {}
        with self._lock:
            db = self._connection()
            for start in range(0, len(wanted), _SELECT_BATCH):
                chunk = wanted[start : start + _SELECT_BATCH]
                marks = ",".join("?" * len(chunk))
                rows = db.execute(f"SELECT docid, title, text FROM docs WHERE docid IN ({marks})", chunk)
                found.update((docid, Doc(docid, title, text)) for docid, title, text in rows)
        return found

    def __len__(self) -> int:
        with self._lock:
            return self._connection().execute("SELECT COUNT(*) FROM docs").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            if self._db is not None and self._pid == os.getpid():
                self._db.close()
            self._db = None

    def __getstate__(self) -> dict[str, object]:
        """Pickled (e.g. into a worker process) without the connection; the copy opens its own."""
        return {"path": self.path}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(state["path"])  # type: ignore[misc, arg-type]


def open_store(
    root: Path, fingerprint: str, docs: Callable[[], Iterable[Doc]], source: str, total: int | None = None
) -> DocStore:
    """The verified store of the corpus ``fingerprint`` under ``root``, built from ``docs()`` if needed.

    ``docs`` is called only when the store must be built, so a corpus is read at most once per key.
    """
    key = store_key(fingerprint)
    with cache.locked(root, key):
        entry = cache.lookup(root, key)
        if entry is None:
            with cache.build(root, key) as tmp:
                write_store(tmp / FILE, docs(), source, total)
            entry = root / cache.key_hash(key)
    return DocStore(entry / FILE)


def write_store(path: Path, docs: Iterable[Doc], source: str, total: int | None = None) -> int:
    """Write ``docs`` into a new SQLite file at ``path``; the number written. A repeated id is a DataError."""
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA journal_mode=OFF")  # a fresh file in a temp folder: a crash discards the folder
        db.execute("PRAGMA synchronous=OFF")
        db.execute("CREATE TABLE docs (docid TEXT NOT NULL, title TEXT NOT NULL, text TEXT NOT NULL)")
        count = 0
        with tqdm(docs, total=total, unit="doc", desc=f"docstore {source}", mininterval=2.0) as bar:
            for batch in _batches(((d.docid, d.title, d.text) for d in bar), _INSERT_BATCH):
                db.executemany("INSERT INTO docs VALUES (?, ?, ?)", batch)
                count += len(batch)
        _index(db, source)
        db.commit()
    finally:
        db.close()
    return count


def _index(db: sqlite3.Connection, source: str) -> None:
    """The unique docid index, built after the inserts (one sort instead of random B-tree inserts)."""
    try:
        db.execute("CREATE UNIQUE INDEX docs_docid ON docs (docid)")
    except sqlite3.IntegrityError:
        row = db.execute("SELECT docid FROM docs GROUP BY docid HAVING COUNT(*) > 1 LIMIT 1").fetchone()
        raise DataError(f"{source}: duplicate document id {row[0]!r}; every document id must be unique") from None


def _batches(rows: Iterable[tuple[str, str, str]], size: int) -> Iterator[list[tuple[str, str, str]]]:
    it = iter(rows)
    while batch := list(islice(it, size)):
        yield batch
