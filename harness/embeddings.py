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
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from harness import cache
from harness.models import EncoderSpec
from harness.types import Corpus, Doc

log = logging.getLogger(__name__)

STORAGE_DTYPES = ("float16", "float32")


class DocEncoder(Protocol):
    spec: EncoderSpec
    dim: int
    identity: dict

    def encode(self, texts: list[str], batch_size: int, desc: str) -> np.ndarray: ...


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
    encoder: DocEncoder, corpus: Corpus, cache_dir: Path, batch_size: int, storage: str, shard_size: int
) -> Embeddings:
    """The cached embeddings of ``corpus``, encoding only what no earlier run finished."""
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
                encoder, corpus, root / f"{cache.key_hash(key)}.partial", key, batch_size, storage, shard_size
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


def _encode_shards(
    encoder: DocEncoder, corpus: Corpus, partial: Path, key: dict, batch_size: int, storage: str, shard_size: int
) -> Path:
    """Encode each missing shard into ``partial``; shards already there are kept."""
    marker = partial / "key.json"
    expected = json.dumps({**key, "shard_size": shard_size}, sort_keys=True)
    if partial.exists() and (not marker.is_file() or marker.read_text() != expected):
        shutil.rmtree(partial)  # another configuration's leftovers
    partial.mkdir(parents=True, exist_ok=True)
    cache.write_text_atomic(marker, expected)
    total = corpus.count_hint()
    for number, docs in enumerate(_shards(corpus, shard_size)):
        vectors_path, ids_path = partial / f"{number:06d}.npy", partial / f"{number:06d}.json"
        if ids_path.is_file() and vectors_path.is_file():
            continue  # finished by an earlier run
        desc = f"encode shard {number + 1}" + (f"/{-(-total // shard_size)}" if total else "")
        vectors = encoder.encode([doc_text(d, encoder.spec.doc_prefix) for d in docs], batch_size, desc)
        tmp = cache.temp_path(vectors_path)
        with open(tmp, "wb") as f:
            np.save(f, vectors.astype(storage))
        tmp.replace(vectors_path)
        cache.write_text_atomic(ids_path, json.dumps([d.docid for d in docs]))  # written last: marks the shard done
    return partial


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
