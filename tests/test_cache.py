"""Cache entries appear whole or not at all, and a damaged entry is never trusted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rankbench.harness import cache

KEY = {"kind": "test", "corpus": "abc"}


def fill(folder: Path) -> None:
    (folder / "data.bin").write_bytes(b"0123456789" * 100)
    (folder / "sub").mkdir()
    (folder / "sub" / "meta.txt").write_text("hello")


def built(root: Path) -> Path:
    with cache.build(root, KEY) as tmp:
        fill(tmp)
    entry = cache.lookup(root, KEY)
    assert entry is not None
    return entry


def test_build_then_lookup(tmp_path: Path):
    entry = built(tmp_path)
    assert (entry / "sub" / "meta.txt").read_text() == "hello"
    manifest = json.loads((entry / cache.MANIFEST).read_text())
    assert manifest["key"] == KEY and set(manifest["files"]) == {"data.bin", "sub/meta.txt"}
    assert [p.name for p in tmp_path.iterdir()] == [entry.name]  # no temp folders left


def test_failed_build_leaves_nothing(tmp_path: Path):
    with pytest.raises(RuntimeError), cache.build(tmp_path, KEY) as tmp:
        fill(tmp)
        raise RuntimeError("indexer crashed")
    assert list(tmp_path.iterdir()) == []
    assert cache.lookup(tmp_path, KEY) is None


def test_truncated_file_is_detected_and_removed(tmp_path: Path, caplog):
    entry = built(tmp_path)
    with open(entry / "data.bin", "r+b") as f:
        f.truncate(10)
    assert cache.lookup(tmp_path, KEY) is None
    assert "data.bin has 10 bytes, manifest says 1000" in caplog.text
    assert not entry.exists()


def test_same_size_corruption_is_detected(tmp_path: Path):
    entry = built(tmp_path)
    (entry / "data.bin").write_bytes(b"X" * 1000)
    assert cache.verify(entry, KEY) == "data.bin content differs from manifest"


def test_missing_file_and_missing_manifest(tmp_path: Path):
    entry = built(tmp_path)
    (entry / "sub" / "meta.txt").unlink()
    assert cache.verify(entry, KEY) == "sub/meta.txt missing"
    (entry / cache.MANIFEST).unlink()
    assert cache.verify(entry, KEY) == "no manifest"


def test_other_key_is_stale(tmp_path: Path):
    entry = built(tmp_path)
    assert cache.verify(entry, {**KEY, "corpus": "changed"}) == "manifest key differs"


def test_tally_counts_one_build_then_hits_and_nested_tallies_add_up(tmp_path: Path):
    root = tmp_path / "lucene"
    with cache.tally() as outer:
        with cache.locked(root, KEY):
            assert cache.lookup(root, KEY) is None
            built(root)  # build, then the lookup that returns it: one build, no hit
        with cache.tally() as inner, cache.locked(root, KEY):
            assert cache.lookup(root, KEY) is not None
    assert outer == {"lucene": {"built": 1, "hit": 1}}
    assert inner == {"lucene": {"hit": 1}}


def test_failed_build_and_unlocked_lookups_are_not_counted(tmp_path: Path):
    root = tmp_path / "lucene"
    with cache.tally() as counts:
        with pytest.raises(RuntimeError), cache.locked(root, KEY), cache.build(root, KEY):
            raise RuntimeError("indexer crashed")
        assert cache.lookup(root, KEY) is None
        built(root)  # outside locked(): nothing serialised it, nothing counts it
    assert counts == {}


def test_a_verified_entry_is_not_hashed_again_until_a_file_changes(tmp_path: Path):
    entry = built(tmp_path)
    cache._file_digest.cache_clear()  # a new process: no digests remembered in memory
    assert cache.lookup(tmp_path, KEY) == entry
    assert cache._file_digest.cache_info().misses == 0  # the stamp vouched for every file
    data = entry / "data.bin"
    data.write_bytes(b"x" * data.stat().st_size)  # same size, new content and time
    assert cache.lookup(tmp_path, KEY) is None  # hashed again, found corrupt, removed
    assert cache._file_digest.cache_info().misses > 0
