"""Corpus embeddings computed once, cached with a manifest, memory-mapped on load, resumable.

Encoding a corpus is the slowest step of dense retrieval (minutes for SciFact on a CPU,
days for MS MARCO), so it is done in shards: each finished shard is saved atomically in a
``.partial`` folder that outlives an interrupted run, and the next run encodes only the
shards that are missing. When all are there they are joined into one cache entry
(``embeddings.npy`` + ``docids.json`` + ``info.json``, verified by the cache manifest).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rankbench.harness import cache
from rankbench.harness.models import EncoderSpec
from rankbench.harness.types import Corpus, Doc

log = logging.getLogger(__name__)

STORAGE_DTYPES = ("float16", "float32")


class DocEncoder(Protocol):
    spec: EncoderSpec
    dim: int
    identity: dict

    def encode(self, texts: list[str], batch_size: int, desc: str) -> np.ndarray: ...


Shard = tuple[int, list[str]]  # (shard number, the texts of its documents)
# Missing shards (and how many shards the corpus has, if known) -> (number, vectors) as each finishes, in any order.
ShardEncoding = Callable[[Iterator[Shard], int | None], Iterator[tuple[int, np.ndarray]]]


@dataclass
class Embeddings:
    docids: list[str]
    vectors: np.ndarray  # (n, dim), memory-mapped from the cache
    folder: Path


def doc_text(doc: Doc, prefix: str) -> str:
    """The text a document is encoded from: prefix + title + text (MTEB's BEIR convention).

    An empty document stays an empty string (plus prefix): it keeps its id and its row.
    """
    return prefix + f"{doc.title} {doc.text}".strip()


def embeddings_key(encoder: DocEncoder, corpus: Corpus, storage: str) -> dict[str, Any]:
    spec = encoder.spec
    return {
        "kind": "doc-embeddings",
        "model": spec.name,
        "weights": spec.digest,
        **encoder.identity,
        "pooling": spec.pooling,
        "normalize": spec.normalize,
        "doc_prefix": spec.doc_prefix,
        "max_length": spec.max_length,
        "corpus": corpus.fingerprint,
        "dtype": storage,
    }


def corpus_embeddings(
    encoder: DocEncoder,
    corpus: Corpus,
    cache_dir: Path,
    batch_size: int,
    storage: str,
    shard_size: int,
    encode: ShardEncoding | None = None,
) -> Embeddings:
    """The cached embeddings of ``corpus``, encoding only what no earlier run finished.

    ``encode`` (default: ``local_shards``) turns missing shards into vectors, e.g. on a Ray cluster;
    it never enters the key, so a cache filled one way is reused by the other.
    """
    if storage not in STORAGE_DTYPES:
        raise ValueError(f"embedding storage dtype must be one of {STORAGE_DTYPES}, got {storage!r}")
    key = embeddings_key(encoder, corpus, storage)
    root = cache_dir / "embeddings"
    with cache.locked(root, key):
        entry = cache.lookup(root, key)
        if entry is not None and (problem := _mismatch(entry, encoder.dim)):
            log.warning("cached embeddings %s are unusable (%s): recomputing", entry, problem)
            shutil.rmtree(entry)
            entry = None
        if entry is None:
            partial = _encode_shards(
                encoder,
                corpus,
                root / f"{cache.key_hash(key)}.partial",
                key,
                storage,
                shard_size,
                encode or local_shards(encoder, batch_size),
            )
            with cache.build(root, key) as tmp:
                _join_shards(partial, tmp, key, encoder.dim)
            shutil.rmtree(partial, ignore_errors=True)
            entry = cache.lookup(root, key)
            assert entry is not None, "freshly written embeddings failed verification"
        else:
            log.info("reusing embeddings %s", entry)
    return Embeddings(
        json.loads((entry / "docids.json").read_text()), np.load(entry / "embeddings.npy", mmap_mode="r"), entry
    )


def _mismatch(entry: Path, dim: int) -> str | None:
    info = json.loads((entry / "info.json").read_text())
    shape = np.load(entry / "embeddings.npy", mmap_mode="r").shape
    if info.get("dim") != dim or shape[1:] != (dim,):
        return f"dimension {info.get('dim')} (array {shape}) but the model gives {dim}"
    if shape[0] != info.get("count"):
        return f"{shape[0]} rows but the manifest says {info.get('count')}"
    return None


def _shards(corpus: Corpus, size: int) -> Iterator[list[Doc]]:
    docs = iter(corpus)
    while shard := list(islice(docs, size)):
        yield shard


def local_shards(encoder: DocEncoder, batch_size: int) -> ShardEncoding:
    """Shards encoded one after another in this process (the default)."""

    def encode(shards: Iterator[Shard], total: int | None) -> Iterator[tuple[int, np.ndarray]]:
        for number, texts in shards:
            desc = f"encode shard {number + 1}" + (f"/{total}" if total else "")
            yield number, encoder.encode(texts, batch_size, desc)

    return encode


def _encode_shards(
    encoder: DocEncoder, corpus: Corpus, partial: Path, key: dict, storage: str, shard_size: int, encode: ShardEncoding
) -> Path:
    """Encode each missing shard into ``partial``, saving each as it arrives; shards already there are kept.

    Only ``encode`` differs between a local and a distributed run: which shards are missing and how a
    finished one is saved are decided here, so both fill the same folder the same way.
    """
    marker = partial / "key.json"
    expected = json.dumps({**key, "shard_size": shard_size}, sort_keys=True)
    if partial.exists() and (not marker.is_file() or marker.read_text() != expected):
        shutil.rmtree(partial)  # another configuration's leftovers
    partial.mkdir(parents=True, exist_ok=True)
    cache.write_text_atomic(marker, expected)
    total = corpus.count_hint()
    docids: dict[int, list[str]] = {}  # of the shards handed to ``encode`` and not saved yet

    def missing() -> Iterator[Shard]:
        for number, docs in enumerate(_shards(corpus, shard_size)):
            if not _finished(partial, number):
                docids[number] = [d.docid for d in docs]
                yield number, [doc_text(d, encoder.spec.doc_prefix) for d in docs]

    kept = sum(1 for f in partial.glob("[0-9]*.json") if f.with_suffix(".npy").is_file())
    encoded = 0
    for number, vectors in encode(missing(), -(-total // shard_size) if total else None):
        _save_shard(partial, number, docids.pop(number), vectors.astype(storage))
        encoded += 1
    log.info("encoded %d shards, %d kept from an earlier run", encoded, kept)
    return partial


def _finished(partial: Path, number: int) -> bool:
    return (partial / f"{number:06d}.json").is_file() and (partial / f"{number:06d}.npy").is_file()


def _save_shard(partial: Path, number: int, docids: list[str], vectors: np.ndarray) -> None:
    """Vectors first, then the ids: a shard whose ids file exists is complete (a kill leaves no half shard)."""
    vectors_path = partial / f"{number:06d}.npy"
    tmp = cache.temp_path(vectors_path)
    with open(tmp, "wb") as f:
        np.save(f, vectors)
    tmp.replace(vectors_path)
    cache.write_text_atomic(partial / f"{number:06d}.json", json.dumps(docids))


def _join_shards(partial: Path, out: Path, key: dict, dim: int) -> None:
    id_files = sorted(partial.glob("[0-9]*.json"))
    docids = [docid for f in id_files for docid in json.loads(f.read_text())]
    matrix = np.lib.format.open_memmap(out / "embeddings.npy", mode="w+", dtype=key["dtype"], shape=(len(docids), dim))
    row = 0
    for ids_file in id_files:
        shard = np.load(ids_file.with_suffix(".npy"))
        matrix[row : row + len(shard)] = shard
        row += len(shard)
    matrix.flush()
    del matrix
    (out / "docids.json").write_text(json.dumps(docids))
    (out / "info.json").write_text(json.dumps({**key, "count": len(docids), "dim": dim}, indent=1))
