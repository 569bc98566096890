"""Cache folders that are written atomically and verified before reuse.

A cache entry is a folder named by the hash of its key. It is built under a temporary
name and renamed into place only when complete, with a ``manifest.json`` recording the
key and every file's size and BLAKE2 digest. An entry whose manifest is missing, whose key
differs, or whose files do not match is stale or corrupt: it is removed and rebuilt.

Hashing a multi-GB entry (an 8.8M-passage index) on every lookup would cost more than the
work it saves, so verifying an entry leaves a stamp (``.verified.json``: each file's size and
modification time); while every file still matches its stamp, the digests are not recomputed.
A truncated, rewritten or replaced file changes its size or time and is hashed again.

Each entry used under ``locked`` counts once, as ``hit`` (found and verified) or ``built``, in
every open ``tally()``: how a run can say what it reused, which tests assert instead of timings.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
STAMP = ".verified.json"
_TEMP_PID = re.compile(r"\.tmp-(\d+)-")

Tally = dict[str, Counter[str]]  # cache folder name ("lucene", "first-stage", ...) -> {"hit": n, "built": m}


@dataclass
class _Use:
    outcome: str | None = None  # "hit" or "built"; None: the entry was neither found nor built


_IN_USE: ContextVar[dict[Path, _Use] | None] = ContextVar("cache_in_use", default=None)  # entries under locked()
_TALLIES: ContextVar[tuple[Tally, ...]] = ContextVar("cache_tallies", default=())


def key_hash(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def file_digest(path: Path) -> str:
    """BLAKE2 of one file's bytes; a model's weights are hashed once per process until the file changes."""
    stat = Path(path).stat()
    return _file_digest(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _file_table(folder: Path) -> dict[str, dict[str, Any]]:
    return {
        str(p.relative_to(folder)): {"size": p.stat().st_size, "blake2b": file_digest(p)}
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in (MANIFEST, STAMP)
    }


def _stat_table(folder: Path, names: Any) -> dict[str, list[int]]:
    return {rel: [(folder / rel).stat().st_size, (folder / rel).stat().st_mtime_ns] for rel in names}


def _stamp(folder: Path, names: Any) -> None:
    """Record that ``folder``'s files were verified as they are now."""
    write_text_atomic(folder / STAMP, json.dumps(_stat_table(folder, names)))


def _stamped(folder: Path, names: Any) -> bool:
    try:
        return json.loads((folder / STAMP).read_text()) == _stat_table(folder, names)
    except (OSError, ValueError):
        return False


def verify(folder: Path, key: dict[str, Any]) -> str | None:
    """None when ``folder`` is a complete entry for ``key``, else why it is not."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        return "no manifest"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "unreadable manifest"
    if manifest.get("key") != key:
        return "manifest key differs"
    expected = manifest.get("files", {})
    for rel, meta in expected.items():
        path = folder / rel
        if not path.is_file():
            return f"{rel} missing"
        if path.stat().st_size != meta["size"]:
            return f"{rel} has {path.stat().st_size} bytes, manifest says {meta['size']}"
    if _stamped(folder, expected):
        return None
    actual = _file_table(folder)
    for rel, meta in expected.items():
        if actual[rel]["blake2b"] != meta["blake2b"]:
            return f"{rel} content differs from manifest"
    _stamp(folder, expected)
    return None


def lookup(root: Path, key: dict[str, Any]) -> Path | None:
    """The verified entry for ``key`` under ``root``; a bad one is removed with a warning."""
    folder = root / key_hash(key)
    if not folder.exists():
        return None
    problem = verify(folder, key)
    if problem is None:
        _mark(folder, "hit")
        return folder
    log.warning("cache entry %s is stale or corrupt (%s): rebuilding", folder, problem)
    shutil.rmtree(folder, ignore_errors=True)
    return None


@contextmanager
def locked(root: Path, key: dict[str, Any]) -> Iterator[None]:
    """Serialise lookup-then-build of one entry across processes (parallel sweep jobs); on success
    count the entry's use once in the open tallies (a lookup after a build stays a build)."""
    root.mkdir(parents=True, exist_ok=True)
    use = _Use()
    token = _IN_USE.set({**(_IN_USE.get() or {}), root / key_hash(key): use})
    try:
        with FileLock(str(root / f".{key_hash(key)}.lock")):
            yield
    finally:
        _IN_USE.reset(token)
    if use.outcome is not None:
        for counts in _TALLIES.get():
            counts.setdefault(root.name, Counter())[use.outcome] += 1


@contextmanager
def tally() -> Iterator[Tally]:
    """Count the cache entries used inside the block, nested tallies' uses included."""
    counts: Tally = {}
    token = _TALLIES.set((*_TALLIES.get(), counts))
    try:
        yield counts
    finally:
        _TALLIES.reset(token)


def _mark(folder: Path, outcome: str) -> None:
    use = (_IN_USE.get() or {}).get(folder)
    if use is not None and use.outcome != "built":
        use.outcome = outcome


@contextmanager
def build(root: Path, key: dict[str, Any]) -> Iterator[Path]:
    """Yield a temporary folder to fill; on success it becomes the entry for ``key``."""
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(root)
    final = root / key_hash(key)
    tmp = temp_path(final)
    tmp.mkdir()
    try:
        yield tmp
        manifest = {"key": key, "files": _file_table(tmp)}
        write_text_atomic(tmp / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
        _stamp(tmp, manifest["files"])  # renaming the folder keeps the files' times
        replace_dir(tmp, final)
        _mark(final, "built")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def temp_path(final: Path) -> Path:
    """A hidden sibling of ``final`` that names this process, so stale ones can be told apart."""
    return final.with_name(f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def remove_stale_temps(folder: Path) -> None:
    """Delete temp folders/files left in ``folder`` by processes that died (e.g. kill -9)."""
    for path in folder.glob(".*.tmp-*"):
        match = _TEMP_PID.search(path.name)
        if match and not _alive(int(match.group(1))):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def replace_dir(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``; an existing ``dst`` is swapped out first, then removed."""
    if dst.exists():
        old = dst.with_name(f".{dst.name}.tmp-{os.getpid()}-old")
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dst)


def write_text_atomic(path: Path, text: str) -> None:
    tmp = temp_path(path)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
