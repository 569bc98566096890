"""Dense retrieval: a bi-encoder named as users name it, corpus embeddings cached, faiss search.

Exact inner product (``index: flat``) is the default, the setting published numbers use.
``flat_fp16`` is exact search over float16 codes (a scalar quantizer): half flat's memory, and
no float32 copy of a float16 store. HNSW, IVF and IVF-PQ trade recall for sub-linear search or
memory on large corpora; the trained ones are cached next to the embeddings they were built from.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path

import faiss
import numpy as np
from omegaconf import DictConfig

from harness import cache
from harness.embeddings import STORAGE_DTYPES, Embeddings, ShardEncoding, corpus_embeddings
from harness.errors import ConfigError
from harness.extras import missing_extra
from harness.models import encoder_spec
from harness.types import Corpus, Query, Run
from retrievers.encoder import Encoder, TorchEncoder

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx")
DISTRIBUTED = ("none", "ray")
INDEXES = ("flat", "flat_fp16", "hnsw", "ivf", "ivfpq")
_ADD_BATCH = 65536  # vectors converted to float32 at a time while adding: no full float32 copy


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
        from retrievers.onnx_encoder import OnnxEncoder

        return OnnxEncoder(spec, cache_dir, onnx_file=onnx_file, threads=threads)
    return TorchEncoder(spec, dtype=dtype, threads=threads)


def _distribution(distributed: str, ray: dict | None) -> dict | None:
    """``retriever.ray`` checked, when corpus encoding is distributed (``distributed=ray``); else None."""
    if distributed not in DISTRIBUTED:
        raise ConfigError(f"retriever.distributed must be one of {', '.join(DISTRIBUTED)}, got {distributed!r}")
    if distributed == "none":
        return None
    try:
        from retrievers.ray_encoding import ray_settings
    except ModuleNotFoundError as e:
        raise ConfigError(f"retriever.distributed=ray: {missing_extra(e) or e}") from e
    return ray_settings(ray)


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
        ivf: dict | None = None,
        pq: dict | None = None,
        storage_dtype: str = "float16",
        shard_size: int = 8192,
        remove_query: bool = False,
        threads: int = 2,
        device: str = "cpu",
        distributed: str = "none",
        ray: dict | None = None,
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
        self.pq = {"m": 48, "bits": 8, **dict(pq or {})}
        self.remove_query, self.threads = remove_query, threads
        self.ray = _distribution(distributed, ray)
        self.encoder: Encoder | None = None
        self.embeddings: Embeddings | None = None
        self._faiss: faiss.Index | None = None

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
        exact = self.index_kind in ("flat", "flat_fp16")
        self._faiss = self._searching(self._filled(self._empty_index()) if exact else self._cached_index(cache_dir))

    def _shard_encoding(self, cache_dir: Path) -> ShardEncoding | None:
        """None (encode here) unless ``distributed=ray``: then a pool of Ray actors, ``ray.num_cpus`` threads each."""
        if self.ray is None:
            return None
        from retrievers.ray_encoding import ray_shards

        assert self.encoder is not None
        threads = max(1, int(self.ray["num_cpus"]))
        return ray_shards(self.encoder_recipe(cache_dir, threads), self.encoder, self.ray, self.batch_size)

    def _searching(self, index: faiss.Index) -> faiss.Index:
        """Apply the search-time settings, which are not part of a cached index."""
        if self.index_kind == "hnsw":
            index.hnsw.efSearch = self.hnsw["ef_search"]
        elif self.index_kind in ("ivf", "ivfpq"):
            index.nprobe = self.ivf["nprobe"]
        return index

    @staticmethod
    def row_columns(cfg: DictConfig) -> dict[str, str]:
        """The leaderboard's ``retriever_index``: the index type and every parameter that shapes its results."""
        kind = cfg.get("index", "flat")
        params = {"hnsw": ("m", "ef_construction", "ef_search"), "ivf": ("nlist", "nprobe", "train_size")}
        group = {"hnsw": "hnsw", "ivf": "ivf", "ivfpq": "ivf"}.get(kind)
        parts = [kind] + [f"{k}={cfg[group][k]}" for k in params.get(group, ()) if group and k in cfg[group]]
        if kind == "ivfpq":
            parts += [f"pq.m={cfg.pq.m}", f"pq.bits={cfg.pq.bits}"]
        return {"retriever_index": " ".join(parts)}

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
            index.train(np.ascontiguousarray(vectors[rows], dtype=np.float32))
        for start in range(0, len(vectors), _ADD_BATCH):
            index.add(np.ascontiguousarray(vectors[start : start + _ADD_BATCH], dtype=np.float32))
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
        return faiss.read_index(str(entry / f"{self.index_kind}.faiss"))

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
