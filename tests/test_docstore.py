"""The document store: built once per corpus fingerprint, exact, rebuilt when stale or corrupt."""

from __future__ import annotations

import json
import logging
import pickle
import shutil
from pathlib import Path

import pytest

from rankbench.harness import cache
from rankbench.harness.datasets import TsvCorpus, load_dataset
from rankbench.harness.docstore import FILE, store_key
from rankbench.harness.errors import DataError
from rankbench.harness.types import Doc
from tests.conftest import write_beir

AWKWARD_DOCS = [
    {"_id": "d1", "title": "Tabs\tand\nnewlines", "text": "col1\tcol2\r\nnext line\u2028after a line separator"},
    {"_id": "d2", "title": "", "text": "Café crème in Zürich, 東京の喫茶店, emoji 🐟, NUL \x00 inside"},
    {"_id": 7, "title": "Numeric id", "text": "an integer _id is read as the string '7'"},
    {"_id": "spaces in id", "title": "t", "text": "  leading and trailing spaces  "},
    {"_id": "d5", "text": "no title field at all"},
]
QRELS = [("q1", "d1", 1)]
QUERIES = [{"_id": "q1", "text": "tabs"}]


def beir_cfg(path: Path) -> dict:
    return {"name": "tiny", "beir_name": None, "split": "test", "path": str(path), "ir_datasets_id": None}


def load_corpus(folder: Path, cache_dir: Path):
    return load_dataset(beir_cfg(folder), None, cache_dir).corpus


def fetch(corpus, docids: set[str]) -> tuple[dict[str, Doc], dict[str, dict[str, int]]]:
    """``get_many`` and the cache entries it used."""
    with cache.tally() as used:
        docs = corpus.get_many(docids)
    return docs, {kind: dict(counts) for kind, counts in used.items()}


def test_store_is_built_once_and_reused_by_later_loads(tmp_path: Path):
    folder = write_beir(tmp_path / "data")
    corpus = load_corpus(folder, tmp_path / "cache")
    docs, used = fetch(corpus, {"d1", "d3"})
    assert used == {"docstore": {"built": 1}}
    assert sorted(docs) == ["d1", "d3"]
    assert fetch(corpus, {"d2"})[1] == {}  # the open store answers: no lookup, no build
    again, used = fetch(load_corpus(folder, tmp_path / "cache"), {"d1", "d3"})  # as a later run would
    assert used == {"docstore": {"hit": 1}}
    assert again == docs


def test_fetch_is_exact_and_missing_ids_are_absent(tmp_path: Path):
    folder = write_beir(tmp_path / "data", docs=AWKWARD_DOCS, queries=QUERIES, qrels=QRELS)
    corpus = load_corpus(folder, tmp_path / "cache")
    every = {d.docid: d for d in corpus}  # the reader's own view of the file
    assert set(every) == {"d1", "d2", "7", "spaces in id", "d5"}
    assert corpus.get_many(set(every) | {"nope", "D1", ""}) == every
    assert corpus.get_many({"d2", "missing"}) == {"d2": every["d2"]}
    assert corpus.get_many(set()) == {}


def test_get_many_reads_the_store_not_the_corpus_file(tmp_path: Path):
    folder = write_beir(tmp_path / "data")
    corpus = load_corpus(folder, tmp_path / "cache")
    expected = corpus.get_many({"d1", "q2"})
    (folder / "corpus.jsonl").rename(tmp_path / "moved.jsonl")  # any scan would now fail
    assert corpus.get_many({"d1", "q2"}) == expected
    with pytest.raises(FileNotFoundError):
        list(corpus)


def test_the_same_content_elsewhere_shares_the_store(tmp_path: Path):
    load_corpus(write_beir(tmp_path / "a"), tmp_path / "cache").get_many({"d1"})
    _, used = fetch(load_corpus(write_beir(tmp_path / "b"), tmp_path / "cache"), {"d1"})
    assert used == {"docstore": {"hit": 1}}  # keyed by content fingerprint, not by path


def test_a_changed_corpus_gets_a_fresh_store(tmp_path: Path):
    folder = write_beir(tmp_path / "data")
    load_corpus(folder, tmp_path / "cache").get_many({"d1"})
    changed = [{"_id": "d1", "title": "Goldfish", "text": "Goldfish stay small in a bowl."}]
    write_beir(folder, docs=changed, qrels=[("q1", "d1", 1)])
    docs, used = fetch(load_corpus(folder, tmp_path / "cache"), {"d1", "d2"})
    assert used == {"docstore": {"built": 1}}
    assert docs == {"d1": Doc("d1", "Goldfish", "Goldfish stay small in a bowl.")}  # d2 is gone from the corpus


def test_a_corrupted_store_is_rebuilt(tmp_path: Path, caplog):
    folder = write_beir(tmp_path / "data")
    corpus = load_corpus(folder, tmp_path / "cache")
    expected = corpus.get_many({"d1", "d2", "d3", "q2"})
    store_file = corpus.store().path
    corpus.store().close()
    data = bytearray(store_file.read_bytes())
    data[-200:] = b"\xff" * 200  # same size, other bytes: only the manifest's digest can tell
    store_file.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        docs, used = fetch(load_corpus(folder, tmp_path / "cache"), {"d1", "d2", "d3", "q2"})
    assert "stale or corrupt" in caplog.text
    assert used == {"docstore": {"built": 1}}
    assert docs == expected


def test_a_store_without_manifest_is_rebuilt(tmp_path: Path):
    folder = write_beir(tmp_path / "data")
    corpus = load_corpus(folder, tmp_path / "cache")
    corpus.get_many({"d1"})
    entry = corpus.store().path.parent
    (entry / cache.MANIFEST).unlink()  # as a build killed before publishing would leave it
    _, used = fetch(load_corpus(folder, tmp_path / "cache"), {"d1"})
    assert used == {"docstore": {"built": 1}}
    assert json.loads((entry / cache.MANIFEST).read_text())["key"] == store_key(corpus.fingerprint)


def test_many_ids_are_fetched_in_batches(tmp_path: Path):
    docs = [{"_id": f"doc{i}", "title": f"title {i}", "text": f"text of document {i}"} for i in range(1_234)]
    folder = write_beir(tmp_path / "data", docs=docs, queries=QUERIES, qrels=[("q1", "doc1", 1)])
    corpus = load_corpus(folder, tmp_path / "cache")
    wanted = {f"doc{i}" for i in range(1_234)} | {"doc99999"}
    found = corpus.get_many(wanted)
    assert len(found) == 1_234
    assert found["doc1200"] == Doc("doc1200", "title 1200", "text of document 1200")
    assert len(corpus.store()) == 1_234


def test_a_pickled_store_opens_its_own_connection(tmp_path: Path):
    corpus = load_corpus(write_beir(tmp_path / "data"), tmp_path / "cache")
    store = corpus.store()
    copy = pickle.loads(pickle.dumps(store))
    assert copy.get_many({"d3"}) == store.get_many({"d3"})


def test_without_a_cache_dir_get_many_scans(tmp_path: Path, caplog):
    corpus = load_dataset(beir_cfg(write_beir(tmp_path / "data")), None).corpus
    with caplog.at_level(logging.WARNING):
        assert sorted(corpus.get_many({"d1", "d2", "x"})) == ["d1", "d2"]
    assert "no cache_dir, so get_many reads the whole corpus" in caplog.text
    assert not (tmp_path / "cache").exists()


def test_duplicate_ids_in_a_tsv_collection_fail_the_build(tmp_path: Path):
    collection = tmp_path / "collection.tsv"
    collection.write_text("1\tfirst passage\n2\tsecond passage\n1\tthe first id again\n")
    corpus = TsvCorpus(collection, tmp_path / "cache" / "docstore")
    with pytest.raises(DataError, match=r"collection\.tsv: duplicate document id '1'"):
        corpus.get_many({"2"})
    root = tmp_path / "cache" / "docstore"
    assert not (root / cache.key_hash(store_key(corpus.fingerprint))).exists()  # nothing half-built published
    assert [p.name for p in root.iterdir() if not p.name.endswith(".lock")] == []


def test_store_file_layout(tmp_path: Path):
    """Where a user finds (and may delete) the store: <cache_dir>/docstore/<key>/docs.sqlite."""
    corpus = load_corpus(write_beir(tmp_path / "data"), tmp_path / "cache")
    corpus.get_many({"d1"})
    key = cache.key_hash(store_key(corpus.fingerprint))
    assert corpus.store().path == tmp_path / "cache" / "docstore" / key / FILE
    shutil.rmtree(tmp_path / "cache")
    fresh = load_corpus(tmp_path / "data", tmp_path / "cache")
    assert fetch(fresh, {"d1"})[1] == {"docstore": {"built": 1}}
