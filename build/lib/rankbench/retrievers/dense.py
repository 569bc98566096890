"""Dense retrieval: a bi-encoder named as users name it, corpus embeddings cached, faiss search.

Exact inner product (``index: flat``) is the default, the setting published numbers use.
``flat_fp16`` is exact search over float16 codes (a scalar quantizer): half flat's memory, and
no float32 copy of a float16 store. HNSW, IVF and IVF-PQ trade recall for sub-linear search or
memory on large corpora; the trained ones are cached next to the embeddings they were built from
and memory-mapped on load. Before an index is built its memory is estimated and the run refused,
naming the setting to change, when it would not fit (``retriever.memory_limit``).
"""

from __future__ import annotations

import logging
import mmap
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

import faiss
import numpy as np
from omegaconf import DictConfig

from rankbench.harness import cache
from rankbench.harness.components import Retriever
from rankbench.harness.embeddings import STORAGE_DTYPES, Embeddings, ShardEncoding, corpus_embeddings
from rankbench.harness.errors import ConfigError
from rankbench.harness.extras import missing_extra
from rankbench.harness.memory import check_memory
from rankbench.harness.models import encoder_spec
from rankbench.harness.types import Corpus, Query, Run
from rankbench.retrievers.encoder import Encoder, TorchEncoder

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx")
DISTRIBUTED = ("none", "ray")
INDEXES = ("flat", "flat_fp16", "hnsw", "ivf", "ivfpq")
# m=96 (4 dimensions a byte) with refine 4: recall@100 >= 0.95 at 1M vectors (benchmarks/results/dense_scale.md)
PQ_DEFAULTS = {"m": 96, "bits": 8, "refine": 4}
_ADD_BATCH = 65536  # vectors converted to float32 at a time while adding: no full float32 copy
# Cached indexes are memory-mapped on load: IVF lists (IO_FLAG_MMAP), HNSW's flat storage (IO_FLAG_MMAP_IFC);
# faiss reads the two through different readers, so one flag per index type.
_MMAP_FLAGS = {"hnsw": faiss.IO_FLAG_MMAP_IFC, "ivf": faiss.IO_FLAG_MMAP, "ivfpq": faiss.IO_FLAG_MMAP}
# faiss grows each inverted list like a std::vector while adding: 8.8M x 384 ivf peaked at 17.9 GB for
# 13.6 GB of lists (benchmarks/results/dense_scale.md), so lists are counted at 1.35x their size.
_LIST_GROWTH = 1.35
_RESCORE_QUERIES = 16  # queries whose refine candidates are read and scored together
_QUERY_BATCH = 4096  # queries searched at a time, so that the memory estimate bounds a search of any size
_REMEDIES = (
    "Use a smaller retriever.index (flat_fp16 holds half of flat; ivfpq about pq.m + 8 bytes a vector), "
    "or raise retriever.memory_limit if you know better."
)


def build_encoder(
    model: str,
    spec_overrides: dict,
    backend: str,
    onnx_file: str | None,
    dtype: str,
    threads: int,
    cache_dir: Path,
) -> Encoder:
    """The document and query encoder; a module-level function so that Ray workers can unpickle a recipe."""
    spec = encoder_spec(model, **spec_overrides)
    if backend == "onnx":
        from rankbench.retrievers.onnx_encoder import OnnxEncoder

        return OnnxEncoder(spec, cache_dir, onnx_file=onnx_file, threads=threads)
    return TorchEncoder(spec, dtype=dtype, threads=threads)


def _distribution(distributed: str, ray: dict | None) -> dict | None:
    """``retriever.ray`` checked, when corpus encoding is distributed (``distributed=ray``); else None."""
    if distributed not in DISTRIBUTED:
        raise ConfigError(f"retriever.distributed must be one of {', '.join(DISTRIBUTED)}, got {distributed!r}")
    if distributed == "none":
        return None
    try:
        from rankbench.retrievers.ray_encoding import ray_settings
    except ModuleNotFoundError as e:
        raise ConfigError(f"retriever.distributed=ray: {missing_extra(e) or e}") from e
    return ray_settings(ray)


class Dense(Retriever):
    """Bi-encoder retrieval; pooling, normalisation and prefixes follow the model's own config."""

    # Where and in what pieces the corpus is encoded, and the memory guard: the same vectors either way.
    RUNTIME_KEYS = frozenset({"shard_size", "memory_limit", "distributed", "ray"})

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
        ivf: dict | None = None,
        pq: dict | None = None,
        storage_dtype: str = "float16",
        shard_size: int = 8192,
        remove_query: bool = False,
        threads: int = 2,
        device: str = "cpu",
        distributed: str = "none",
        ray: dict | None = None,
        memory_limit: str | int = "auto",
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
        self.ivf = {"nlist": 1024, "nprobe": 32, "train_size": 100_000, **dict(ivf or {})}
        self.ray = _distribution(distributed, ray)
        self.pq = {**PQ_DEFAULTS, **dict(pq or {})}
        if self.pq["refine"] < 0:
            raise ConfigError(f"retriever.pq.refine must be >= 0 (0: no exact re-ranking), got {self.pq['refine']}")
        self.remove_query, self.threads, self.memory_limit = remove_query, threads, memory_limit
        self.encoder: Encoder | None = None
        self.embeddings: Embeddings | None = None
        self._faiss: faiss.Index | None = None
        self.index_file: Path | None = None  # the cached index file, for indexes that are cached

    def make_encoder(self, cache_dir: Path) -> Encoder:
        return self.encoder_recipe(cache_dir, self.threads)()

    def encoder_recipe(self, cache_dir: Path, threads: int) -> Callable[[], Encoder]:
        """A picklable maker of this retriever's encoder: Ray workers build the one the driver builds."""
        return partial(
            build_encoder, self.model, self.spec_overrides, self.backend, self.onnx_file, self.dtype, threads, cache_dir
        )

    def index(self, corpus: Corpus, cache_dir: Path) -> None:
        """Embed the corpus (or load the cached embeddings) and build the faiss index."""
        faiss.omp_set_num_threads(self.threads)
        self.encoder = self.make_encoder(cache_dir)
        self.embeddings = corpus_embeddings(
            self.encoder,
            corpus,
            cache_dir,
            self.batch_size,
            self.storage_dtype,
            self.shard_size,
            self._shard_encoding(cache_dir),
        )
        self.build_index(cache_dir)

    def build_index(self, cache_dir: Path) -> None:
        """The faiss index over ``self.embeddings``: checked against the memory limit, then built or loaded."""
        assert self.embeddings is not None
        n, d = self.embeddings.vectors.shape
        needed = self.memory_needed(n, d)
        check_memory(
            needed,
            self.memory_limit,
            f"retriever.index={self.index_kind} over {n:,} vectors of dimension {d}",
            "retriever.memory_limit",
            _REMEDIES,
        )
        exact = self.index_kind in ("flat", "flat_fp16")
        self._faiss = self._searching(self._filled(self._empty_index()) if exact else self._cached_index(cache_dir))

    def _shard_encoding(self, cache_dir: Path) -> ShardEncoding | None:
        """None (encode here) unless ``distributed=ray``: then a pool of Ray actors, ``ray.num_cpus`` threads each."""
        if self.ray is None:
            return None
        from rankbench.retrievers.ray_encoding import ray_shards

        assert self.encoder is not None
        threads = max(1, int(self.ray["num_cpus"]))
        return ray_shards(self.encoder_recipe(cache_dir, threads), self.encoder, self.ray, self.batch_size)

    def memory_needed(self, n: int, d: int) -> int:
        """Bytes the index over ``n`` vectors of dimension ``d`` holds in memory while it is built and searched.

        The index itself, the training sample, one batch of vectors being added, and one batch of queries
        with its results; the memory-mapped embeddings are released batch by batch and do not count.
        """
        train = min(n, self.ivf["train_size"]) * d * 4 if self.index_kind in ("ivf", "ivfpq") else 0
        cells = min(n, self.ivf["nlist"]) * d * 4
        per_vector = {
            "flat": d * 4,
            "flat_fp16": d * 2,
            "hnsw": d * 4 + self.hnsw["m"] * 2 * 4 * 1.1,  # the vectors and ~2m neighbour links per node
            "ivf": (d * 4 + 8) * _LIST_GROWTH,  # the vectors and their ids, in inverted lists
            "ivfpq": (self.pq["m"] * self.pq["bits"] / 8 + 8) * _LIST_GROWTH,
        }[self.index_kind]
        depth = (self.hits + 1) * max(1, self.pq["refine"] if self.index_kind == "ivfpq" else 1)
        queries = _QUERY_BATCH * (d * 4 + depth * (4 + 8))
        adding = min(n, _ADD_BATCH) * d * (4 + 2)
        return int(n * per_vector + train + cells + queries + adding)

    def _searching(self, index: faiss.Index) -> faiss.Index:
        """Apply the search-time settings, which are not part of a cached index."""
        if self.index_kind == "hnsw":
            index.hnsw.efSearch = self.hnsw["ef_search"]
        elif self.index_kind in ("ivf", "ivfpq"):
            index.nprobe = self.ivf["nprobe"]
        return index

    @classmethod
    def row_columns(cls, cfg: DictConfig) -> dict[str, str]:
        """The leaderboard's ``retriever_index``: the index type and every parameter that shapes its results."""
        kind = cfg.get("index", "flat")
        params = {"hnsw": ("m", "ef_construction", "ef_search"), "ivf": ("nlist", "nprobe", "train_size")}
        group = {"hnsw": "hnsw", "ivf": "ivf", "ivfpq": "ivf"}.get(kind)
        parts = [kind] + [f"{k}={cfg[group][k]}" for k in params.get(group, ()) if group and k in cfg[group]]
        if kind == "ivfpq":
            parts += [
                f"pq.m={cfg.pq.m}",
                f"pq.bits={cfg.pq.bits}",
                f"pq.refine={cfg.pq.get('refine', PQ_DEFAULTS['refine'])}",
            ]
        return {"index": " ".join(parts)}

    def index_settings(self) -> dict[str, object]:
        """The index type and the parameters that shape it (what an approximate run must be told apart by)."""
        build = {"hnsw": ("m", "ef_construction"), "ivf": ("nlist", "train_size"), "ivfpq": ("nlist", "train_size")}
        params = {"hnsw": self.hnsw, "ivf": self.ivf, "ivfpq": self.ivf}.get(self.index_kind, {})
        settings: dict[str, object] = {"index": self.index_kind}
        settings.update({k: params[k] for k in build.get(self.index_kind, ())})
        if self.index_kind == "ivfpq":
            settings.update(pq_m=self.pq["m"], pq_bits=self.pq["bits"])
        return settings

    def _empty_index(self) -> faiss.Index:
        """The faiss index for ``index_kind``, untrained and empty."""
        assert self.embeddings is not None
        d, ip = self.embeddings.vectors.shape[1], faiss.METRIC_INNER_PRODUCT
        if self.index_kind == "flat":
            return faiss.IndexFlatIP(d)
        if self.index_kind == "flat_fp16":
            return faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_fp16, ip)
        if self.index_kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, self.hnsw["m"], ip)
            index.hnsw.efConstruction = self.hnsw["ef_construction"]
            return index
        nlist = min(self.ivf["nlist"], len(self.embeddings.vectors))
        if self.index_kind == "ivf":
            return faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, ip)
        if d % self.pq["m"]:
            raise ConfigError(f"retriever.pq.m={self.pq['m']} must divide the embedding dimension {d}")
        if len(self.embeddings.vectors) < 2 ** self.pq["bits"]:
            raise ConfigError(
                f"retriever.index=ivfpq trains 2^pq.bits={2 ** self.pq['bits']} centroids per sub-vector: "
                f"this corpus has {len(self.embeddings.vectors)} documents; use flat or lower retriever.pq.bits"
            )
        return faiss.IndexIVFPQ(faiss.IndexFlatIP(d), d, nlist, self.pq["m"], self.pq["bits"], ip)

    def _filled(self, index: faiss.Index) -> faiss.Index:
        """Train ``index`` on a seeded sample if it needs it, then add every vector, a batch at a time."""
        assert self.embeddings is not None
        vectors = self.embeddings.vectors
        if not index.is_trained:
            size = min(len(vectors), self.ivf["train_size"])
            rows = np.sort(np.random.default_rng(0).choice(len(vectors), size, replace=False))
            index.train(read_rows(vectors, rows).astype(np.float32))
        if isinstance(index, faiss.IndexFlatCodes):
            return _encoded_in_place(index, vectors)
        for start in range(0, len(vectors), _ADD_BATCH):
            index.add(np.ascontiguousarray(vectors[start : start + _ADD_BATCH], dtype=np.float32))
            release_pages(vectors, start, start + _ADD_BATCH)
        return index

    def _cached_index(self, cache_dir: Path) -> faiss.Index:
        """HNSW graphs and trained IVF indexes are built once per embeddings and settings."""
        assert self.embeddings is not None
        key = {"kind": f"faiss-{self.index_kind}", "embeddings": self.embeddings.folder.name}
        key.update({k: v for k, v in self.index_settings().items() if k != "index"})
        if self.index_kind == "hnsw":  # the key HNSW entries had before IVF existed: they stay valid
            key = {"kind": "faiss-hnsw", "embeddings": key["embeddings"], "m": self.hnsw["m"]}
            key["ef_construction"] = self.hnsw["ef_construction"]
        root = cache_dir / "faiss"
        with cache.locked(root, key):
            entry = cache.lookup(root, key)
            if entry is None:
                with cache.build(root, key) as tmp:
                    faiss.write_index(self._filled(self._empty_index()), str(tmp / f"{self.index_kind}.faiss"))
                entry = cache.lookup(root, key)
                assert entry is not None
        self.index_file = entry / f"{self.index_kind}.faiss"
        return faiss.read_index(str(self.index_file), _MMAP_FLAGS[self.index_kind])

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
        scores, rows = self.search(vectors, self.hits + int(self.remove_query))
        docids = self.embeddings.docids
        for q, q_scores, q_rows in zip(asked, scores, rows, strict=True):
            hits = [(docids[r], float(s)) for r, s in zip(q_rows, q_scores, strict=True) if r >= 0]
            if self.remove_query:
                hits = [h for h in hits if h[0] != q.qid]
            run[q.qid] = hits[: self.hits]
        return run

    def search(self, queries: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows) of the top ``depth`` stored vectors per query vector, ``_QUERY_BATCH`` queries at a time."""
        assert self._faiss is not None and self.embeddings is not None
        depth = min(depth, self._faiss.ntotal)
        refine = self.pq["refine"] if self.index_kind == "ivfpq" else 0
        fetch = min(depth * max(refine, 1), self._faiss.ntotal)
        found = []
        for start in range(0, len(queries), _QUERY_BATCH):
            batch = np.ascontiguousarray(queries[start : start + _QUERY_BATCH], dtype=np.float32)
            scores, rows = self._faiss.search(batch, fetch)
            found.append(rescored(self.embeddings.vectors, batch, rows, depth) if refine else (scores, rows))
        return np.concatenate([s for s, _ in found]), np.concatenate([r for _, r in found])


def rescored(vectors: np.ndarray, queries: np.ndarray, rows: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """The top ``depth`` of each query's candidate ``rows`` by exact inner product with the stored vectors.

    PQ codes lose the detail that orders close neighbours; reading the candidates back from the
    memory-mapped store restores it without a second copy of the vectors in memory. A few queries
    at a time: their candidates are read once each, in file order, and scored by one matrix product.
    """
    scores = np.full((len(queries), depth), -np.inf, dtype=np.float32)
    best = np.full((len(queries), depth), -1, dtype=np.int64)
    for start in range(0, len(queries), _RESCORE_QUERIES):
        block, found = rows[start : start + _RESCORE_QUERIES], rows[start : start + _RESCORE_QUERIES] >= 0
        unique, where = np.unique(block[found], return_inverse=True)
        products = queries[start : start + _RESCORE_QUERIES] @ read_rows(vectors, unique).astype(np.float32).T
        exact = np.full(block.shape, -np.inf, dtype=np.float32)
        exact[found] = products[np.nonzero(found)[0], where]
        order = np.argsort(-exact, axis=1, kind="stable")[:, :depth]
        kept = np.take_along_axis(exact, order, 1)
        scores[start : start + len(block), : order.shape[1]] = kept
        best[start : start + len(block), : order.shape[1]] = np.where(
            kept > -np.inf, np.take_along_axis(block, order, 1), -1
        )
    return scores, best


def _encoded_in_place(index: faiss.IndexFlatCodes, vectors: np.ndarray) -> faiss.IndexFlatCodes:
    """``vectors`` encoded batch by batch straight into the index's code array, sized once.

    ``index.add`` grows the array as a std::vector does, by reallocating and copying: on the last
    growth the old and the new array are both resident, up to twice the index (27 GB for 8.8M
    float32 vectors of 384 dimensions).
    """
    index.codes.resize(len(vectors) * index.code_size)
    codes = faiss.rev_swig_ptr(index.codes.data(), len(vectors) * index.code_size).reshape(len(vectors), -1)
    for start in range(0, len(vectors), _ADD_BATCH):
        batch = np.ascontiguousarray(vectors[start : start + _ADD_BATCH], dtype=np.float32)
        codes[start : start + len(batch)] = index.sa_encode(batch)
        release_pages(vectors, start, start + _ADD_BATCH)
    index.ntotal = len(vectors)
    return index


def read_rows(vectors: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``vectors[rows]`` for scattered ``rows``; from a memory-mapped store, read with pread instead.

    A page fault on a file mapping maps the pages around it too (fault-around, 64 KB), so reading a
    few hundred thousand scattered rows through the mapping puts most of an 8.8M-row store in RSS.
    """
    if not isinstance(vectors, np.memmap) or vectors.filename is None:
        return np.asarray(vectors[rows])
    out = np.empty((len(rows), *vectors.shape[1:]), dtype=vectors.dtype)
    row_bytes = vectors.strides[0]
    with open(vectors.filename, "rb", buffering=0) as file:
        for i, row in enumerate(rows.tolist()):
            os.preadv(file.fileno(), [out[i]], vectors.offset + row * row_bytes)
    return out


def release_pages(vectors: np.ndarray, start: int, stop: int) -> None:
    """Drop rows ``start:stop`` of a memory-mapped store from this process's resident set.

    Pages of a file mapping that were read stay resident and count in RSS beside the index built
    from them (8.8M float16 vectors: 6.8 GB twice); the kernel keeps them in its page cache.
    """
    handle = getattr(vectors, "_mmap", None)
    if handle is None or not isinstance(vectors, np.memmap):
        return
    row_bytes, origin = vectors.strides[0], vectors.offset % mmap.ALLOCATIONGRANULARITY  # where row 0 is in the map
    first = origin + start * row_bytes
    aligned = first - first % mmap.PAGESIZE
    end = min(origin + min(stop, len(vectors)) * row_bytes, len(handle))
    if end > aligned:
        handle.madvise(mmap.MADV_DONTNEED, aligned, end - aligned)
