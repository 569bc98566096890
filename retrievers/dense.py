"""Dense retrieval: a bi-encoder named as users name it, corpus embeddings cached, faiss search.

Exact inner product (``index: flat``) is the default, the setting published numbers use;
HNSW (``index: hnsw``) trades a little recall for sub-linear search on large corpora and is
cached next to the embeddings it was built from.
"""

from __future__ import annotations

import logging
from pathlib import Path

import faiss
import numpy as np

from harness import cache
from harness.embeddings import STORAGE_DTYPES, Embeddings, corpus_embeddings
from harness.errors import ConfigError
from harness.models import encoder_spec
from harness.types import Corpus, Query, Run
from retrievers.encoder import Encoder, TorchEncoder

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx")
INDEXES = ("flat", "hnsw")


class Dense:
    """Bi-encoder retrieval; pooling, normalisation and prefixes follow the model's own config."""

    CACHE_VERSION = 1

    def __init__(
        self,
        model: str = "sentence-transformers/all-MiniLM-L6-v2",
        name: str = "dense",
        hits: int = 1000,
        backend: str = "torch",
        onnx_file: str | None = None,
        dtype: str = "auto",
        max_length: int | None = None,
        batch_size: int = 32,
        query_prefix: str | None = None,
        doc_prefix: str | None = None,
        pooling: str | None = None,
        normalize: bool | None = None,
        index: str = "flat",
        hnsw: dict | None = None,
        storage_dtype: str = "float16",
        shard_size: int = 8192,
        remove_query: bool = False,
        threads: int = 2,
        device: str = "cpu",
    ):
        for key, value, allowed in (
            ("backend", backend, BACKENDS),
            ("index", index, INDEXES),
            ("storage_dtype", storage_dtype, STORAGE_DTYPES),
        ):
            if value not in allowed:
                raise ConfigError(f"retriever.{key} must be one of {', '.join(allowed)}, got {value!r}")
        if device != "cpu":
            raise ConfigError(f"retriever.device={device!r}: only cpu is supported in this build")
        if hits < 1 or batch_size < 1 or shard_size < 1:
            raise ConfigError("retriever.hits, retriever.batch_size and retriever.shard_size must be >= 1")
        self.model, self.name, self.hits = model, name, hits
        self.backend, self.onnx_file, self.dtype = backend, onnx_file, dtype
        self.spec_overrides = {
            "max_length": max_length,
            "query_prefix": query_prefix,
            "doc_prefix": doc_prefix,
            "pooling": pooling,
            "normalize": normalize,
        }
        self.batch_size, self.storage_dtype, self.shard_size = batch_size, storage_dtype, shard_size
        self.index_kind = index
        self.hnsw = {"m": 32, "ef_construction": 200, "ef_search": 256, **dict(hnsw or {})}
        self.remove_query, self.threads = remove_query, threads
        self.encoder: Encoder | None = None
        self.embeddings: Embeddings | None = None
        self._faiss: faiss.Index | None = None

    def make_encoder(self, cache_dir: Path) -> Encoder:
        spec = encoder_spec(self.model, **self.spec_overrides)
        if self.backend == "onnx":
            from retrievers.onnx_encoder import OnnxEncoder

            return OnnxEncoder(spec, cache_dir, onnx_file=self.onnx_file, threads=self.threads)
        return TorchEncoder(spec, dtype=self.dtype, threads=self.threads)

    def index(self, corpus: Corpus, cache_dir: Path) -> None:
        """Embed the corpus (or load the cached embeddings) and build the faiss index."""
        faiss.omp_set_num_threads(self.threads)
        self.encoder = self.make_encoder(cache_dir)
        self.embeddings = corpus_embeddings(
            self.encoder, corpus, cache_dir, self.batch_size, self.storage_dtype, self.shard_size
        )
        self._faiss = self._flat() if self.index_kind == "flat" else self._hnsw(cache_dir)

    def _flat(self) -> faiss.Index:
        assert self.embeddings is not None
        index = faiss.IndexFlatIP(self.embeddings.vectors.shape[1])
        index.add(np.ascontiguousarray(self.embeddings.vectors, dtype=np.float32))
        return index

    def _hnsw(self, cache_dir: Path) -> faiss.Index:
        assert self.embeddings is not None
        key = {"kind": "faiss-hnsw", "embeddings": self.embeddings.folder.name, "m": self.hnsw["m"]}
        key["ef_construction"] = self.hnsw["ef_construction"]
        root = cache_dir / "faiss"
        with cache.locked(root, key):
            entry = cache.lookup(root, key)
            if entry is None:
                with cache.build(root, key) as tmp:
                    index = faiss.IndexHNSWFlat(
                        self.embeddings.vectors.shape[1], self.hnsw["m"], faiss.METRIC_INNER_PRODUCT
                    )
                    index.hnsw.efConstruction = self.hnsw["ef_construction"]
                    index.add(np.ascontiguousarray(self.embeddings.vectors, dtype=np.float32))
                    faiss.write_index(index, str(tmp / "hnsw.faiss"))
                entry = cache.lookup(root, key)
                assert entry is not None
        index = faiss.read_index(str(entry / "hnsw.faiss"))
        index.hnsw.efSearch = self.hnsw["ef_search"]
        return index

    def retrieve(self, queries: list[Query]) -> Run:
        """Top ``hits`` by inner product; an empty query retrieves nothing."""
        if self.encoder is None or self.embeddings is None or self._faiss is None:
            raise RuntimeError("Dense.retrieve called before index()")
        asked = [q for q in queries if q.text.strip()]
        run: Run = {q.qid: [] for q in queries}
        if not asked:
            return run
        prefix = self.encoder.spec.query_prefix
        vectors = self.encoder.encode([prefix + q.text for q in asked], self.batch_size, "encode queries")
        depth = min(self.hits + int(self.remove_query), self._faiss.ntotal)
        scores, rows = self._faiss.search(np.ascontiguousarray(vectors, dtype=np.float32), depth)
        docids = self.embeddings.docids
        for q, q_scores, q_rows in zip(asked, scores, rows, strict=True):
            hits = [(docids[r], float(s)) for r, s in zip(q_rows, q_scores, strict=True) if r >= 0]
            if self.remove_query:
                hits = [h for h in hits if h[0] != q.qid]
            run[q.qid] = hits[: self.hits]
        return run
