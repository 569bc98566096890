"""Dense vector search at scale: SciFact's embeddings plus N synthetic vectors, each faiss index in its own process.

    python benchmarks/dense_scale.py                                   # N = 0 and 1M (make bench-dense-scale)
    python benchmarks/dense_scale.py --sizes 8836640 --indexes flat,ivfpq,flat_fp16
    python benchmarks/dense_scale.py --sizes 1000000 --indexes ivfpq --set pq.refine=8 --set ivf.nprobe=64

The SciFact corpus is encoded once with the dense retriever's own path (all-MiniLM-L6-v2, the
repository's embeddings cache under ``<cache-dir>/embeddings``), and its 300 test queries once too
(``<cache-dir>/dense-scale/source-*``). N synthetic vectors are drawn from a Gaussian with the
SciFact embeddings' mean and full covariance, L2-normalised as the model's vectors are, seeded,
and written chunk by chunk after SciFact's rows into one float16 ``.npy`` per N (manifest last,
reused by later runs). Synthetic vectors answer no query: nDCG@10 on SciFact's qrels shows what
the haystack and the index's approximation cost, and recall@``hits`` compares each index with exact
search over the same vectors (top ``hits`` computed chunkwise in numpy, cached beside the vectors).

Every (N, index) pair runs in a fresh child process (``--_one N INDEX``), so its peak RSS is its
own: build the index through ``Dense.build_index`` (which refuses, before building, an index its
memory estimate says will not fit; trained indexes are cached under ``<cache-dir>/dense-scale/index``
and memory-mapped on load), one untimed warm-up search, then timed batch searches of all queries
(faiss on ``THREADS`` threads) until ``MIN_PASSES`` passes and ``MIN_SECONDS`` have gone by. Each
result is saved as JSON when it finishes; a rerun with the same settings skips it. flat and ivfpq
run back to back on each N, so the q/s ratio between them sees the same machine load.

The report (``<out>/dense_scale.md`` and ``.json``) ends with an extrapolation of corpus encoding
time from the encoder benchmark's reports, one per CPU kind (``--encoder-reports``,
``benchmarks/results/dense-<kind>.json``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere: import this checkout's packages
    sys.path.insert(0, str(REPO))

from benchmarks.common import add_path_options, environment, write_report  # noqa: E402
from benchmarks.scale import du, kib_field_gb, run_child, stderr_tail, stored_result  # noqa: E402
from benchmarks.synthetic import MSMARCO_MEAN_WORDS, MSMARCO_PASSAGES, _short  # noqa: E402
from rankbench.harness import cache  # noqa: E402

log = logging.getLogger("bench.dense_scale")

INDEXES = ("flat", "ivfpq", "flat_fp16", "ivf", "hnsw")  # flat and ivfpq back to back: their q/s ratio is a target
REFERENCE = "flat"
THREADS = 2
GENERATOR_VERSION = 1
CLUSTERS = 256  # mixture components fitted to SciFact's embeddings (k-means): ~20 documents each
CHUNK_ROWS = 65536  # synthetic vectors drawn, and exact scores computed, this many at a time
MIN_PASSES, MIN_SECONDS = 3, 2.0  # timed searches: at least this many passes and this long, unless one pass is slow
SLOW_PASS_S = 20.0
WARMUP_QUERIES = 32
WORKERS = (8, 32, 128)
GB = 1e9  # reports say GB (10^9 bytes), as the memory targets do


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="0,1000000", help="synthetic vectors added to SciFact's, comma-separated")
    parser.add_argument("--indexes", default=",".join(INDEXES), help=f"subset of {','.join(INDEXES)}")
    parser.add_argument("--hits", type=int, default=100, help="depth searched; recall is recall@hits")
    parser.add_argument("--queries", type=int, default=None, help="only the first N SciFact test queries (smoke)")
    parser.add_argument("--seed", type=int, default=13, help="seed of the synthetic vectors")
    parser.add_argument("--clusters", type=int, default=CLUSTERS, help="mixture components (1: one Gaussian)")
    parser.add_argument("--hnsw-max-build-s", type=float, default=600.0, help="skip HNSW builds expected to be longer")
    parser.add_argument("--memory-limit", default="auto", help="retriever.memory_limit of every child")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. pq.refine=8")
    parser.add_argument("--source", type=Path, default=None, help="a prepared source folder (tests: a fixture)")
    parser.add_argument(
        "--encoder-reports",
        type=Path,
        nargs="*",
        default=sorted((REPO / "benchmarks" / "results").glob("dense-*.json")),
        help="the encoder benchmark's reports (one per CPU kind) to extrapolate encoding times from",
    )
    add_path_options(parser, "embeddings cache; vectors, indexes and results go under <cache-dir>/dense-scale/")
    parser.add_argument("--_one", nargs=2, metavar=("N", "INDEX"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    args.indexes = [i for i in INDEXES if i in args.indexes.split(",")]
    args.overrides = dict(parse_setting(s) for s in args.set)
    args.root = args.cache_dir / "dense-scale"
    return args


def parse_setting(text: str) -> tuple[str, Any]:
    """``"pq.refine=8"`` -> ``("pq.refine", 8)``: a Dense setting, dotted into its group."""
    key, _, value = text.partition("=")
    if not value:
        raise SystemExit(f"--set wants KEY=VALUE, got {text!r}")
    return key.strip(), int(value) if value.strip().lstrip("-").isdigit() else value.strip()


def settings(args: argparse.Namespace, source: Path) -> dict[str, Any]:
    """What a stored result must have been measured with to be reused."""
    return {
        "source": source.name,
        "seed": args.seed,
        "clusters": args.clusters,
        "hits": args.hits,
        "queries": args.queries,
        "threads": THREADS,
        "overrides": args.overrides,
        "generator": GENERATOR_VERSION,
    }


def dense_kwargs(kind: str, hits: int, overrides: dict[str, Any], memory_limit: str = "auto") -> dict[str, Any]:
    """Dense's constructor arguments for ``kind`` with the dotted ``--set`` overrides in their groups."""
    kwargs: dict[str, Any] = {"index": kind, "hits": hits, "threads": THREADS, "memory_limit": memory_limit}
    for key, value in overrides.items():
        group, _, name = key.rpartition(".")
        if group:
            kwargs.setdefault(group, {})[name] = value
        else:
            kwargs[name] = value
    return kwargs


# ---- the source: SciFact's document and query vectors, encoded once ---------------------------------


def prepare_source(args: argparse.Namespace) -> Path:
    """``<root>/source-*``: SciFact's document vectors, test query vectors and qrels, and token statistics."""
    from benchmarks.dense import SCIFACT
    from rankbench.harness.datasets import load_dataset
    from rankbench.harness.embeddings import corpus_embeddings, doc_text
    from rankbench.retrievers.dense import Dense

    dense = Dense()
    encoder = dense.make_encoder(args.cache_dir)
    dataset = load_dataset(SCIFACT, args.data_root)
    docs = corpus_embeddings(
        encoder, dataset.corpus, args.cache_dir, dense.batch_size, dense.storage_dtype, dense.shard_size
    )
    key = {"kind": "dense-scale-source", "embeddings": docs.folder.name, "query_prefix": encoder.spec.query_prefix}
    root = args.root / "sources"
    with cache.locked(root, key):
        entry = cache.lookup(root, key)
        if entry is None:
            texts = [doc_text(d, encoder.spec.doc_prefix) for d in dataset.corpus]
            with cache.build(root, key) as tmp:
                np.save(tmp / "doc_vectors.npy", np.asarray(docs.vectors))
                (tmp / "docids.json").write_text(json.dumps(docs.docids))
                queries = dataset.queries
                vectors = encoder.encode([encoder.spec.query_prefix + q.text for q in queries], 32, "encode queries")
                np.save(tmp / "query_vectors.npy", np.asarray(vectors, dtype=np.float32))
                (tmp / "qids.json").write_text(json.dumps([q.qid for q in queries]))
                (tmp / "qrels.json").write_text(json.dumps({q.qid: dataset.qrels.get(q.qid, {}) for q in queries}))
                info = {"model": encoder.spec.name, "embeddings": docs.folder.name, **token_stats(encoder, texts)}
                (tmp / "info.json").write_text(json.dumps(info, indent=1))
            entry = cache.lookup(root, key)
            assert entry is not None
    return entry


def token_stats(encoder: Any, texts: list[str]) -> dict[str, float]:
    """SciFact's mean tokens per document as encoded (truncated at max_length) and tokens per word untruncated:
    what scales the encoder benchmark's docs/s to passages of another length."""
    tokenizer = encoder.tokenizer
    lengths = np.array([len(ids) for ids in tokenizer(texts, truncation=False)["input_ids"]], dtype=np.float64)
    words = np.array([len(t.split()) for t in texts], dtype=np.float64)
    return {
        "docs": len(texts),
        "max_length": encoder.spec.max_length,
        "mean_words": float(words.mean()),
        "mean_tokens": float(np.minimum(lengths, encoder.spec.max_length).mean()),
        "tokens_per_word": float(lengths.sum() / max(words.sum(), 1)),
    }


# ---- the vectors: SciFact's plus N synthetic ones, and exact search over them -------------------------


def ensure_store(source: Path, n: int, seed: int, clusters: int, root: Path) -> Path:
    """``<root>/store-<N>-<hash>/embeddings.npy``: SciFact's rows then ``n`` seeded synthetic rows (float16)."""
    from rankbench.retrievers.dense import release_pages

    manifest = {"source": source.name, "synthetic": n, "seed": seed, "clusters": clusters}
    manifest["generator"] = GENERATOR_VERSION
    folder = root / f"store-{_short(n)}-{cache.key_hash(manifest)[:10]}"
    if (folder / "manifest.json").is_file() and json.loads((folder / "manifest.json").read_text()) == manifest:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    tmp = cache.temp_path(folder)
    tmp.mkdir(parents=True)
    real = np.load(source / "doc_vectors.npy")
    store = np.lib.format.open_memmap(tmp / "embeddings.npy", "w+", np.float16, (len(real) + n, real.shape[1]))
    store[: len(real)] = real
    log.info("writing %s synthetic vectors to %s", f"{n:,}", folder.name)
    for start, chunk in synthetic_chunks(real.astype(np.float32), n, seed, clusters):
        store[len(real) + start : len(real) + start + len(chunk)] = chunk
        release_pages(store, len(real) + start, len(real) + start + len(chunk))  # written pages stay in page cache
    store.flush()
    del store
    (tmp / "manifest.json").write_text(json.dumps(manifest))  # last: a folder with its manifest is complete
    tmp.rename(folder)
    return folder


def synthetic_chunks(real: np.ndarray, n: int, seed: int, clusters: int) -> Iterator[tuple[int, np.ndarray]]:
    """``n`` vectors from a Gaussian mixture fitted to ``real``, L2-normalised, float16, in chunks.

    ``clusters`` components: k-means centres of the real vectors, weighted by their sizes, sharing
    the covariance of the vectors around their centres (one component: the real vectors' mean and
    full covariance). The covariance keeps the embeddings' anisotropy; the components keep their
    topical clusters, without which neighbours spread over every IVF cell.
    """
    import faiss

    rng = np.random.default_rng(seed)
    if clusters > 1:
        kmeans = faiss.Kmeans(real.shape[1], clusters, niter=20, seed=seed)
        kmeans.train(real)
        centres, labels = kmeans.centroids, kmeans.index.search(real, 1)[1][:, 0]
    else:
        centres, labels = real.mean(axis=0, keepdims=True), np.zeros(len(real), dtype=np.int64)
    weights = np.bincount(labels, minlength=len(centres)) / len(real)
    residuals = real - centres[labels]
    cov = residuals.T @ residuals / (len(real) - len(centres)) + 1e-6 * np.eye(real.shape[1])
    factor = np.linalg.cholesky(cov).astype(np.float32)
    for start in range(0, n, CHUNK_ROWS):
        size = min(CHUNK_ROWS, n - start)
        draw = rng.standard_normal((size, real.shape[1]), dtype=np.float32) @ factor.T
        draw += centres[rng.choice(len(centres), size, p=weights)]
        yield start, (draw / np.linalg.norm(draw, axis=1, keepdims=True)).astype(np.float16)


def exact_top(store: Path, queries: np.ndarray, hits: int) -> np.ndarray:
    """Rows of the exact top ``hits`` per query over ``store`` (float32 products, computed chunkwise), cached."""
    from rankbench.retrievers.dense import release_pages

    digest = cache.key_hash({"queries": queries.tobytes().hex()[:4096], "count": len(queries), "hits": hits})[:12]
    path = store / f"exact-{digest}.npy"
    if path.is_file():
        return np.load(path)
    vectors = np.load(store / "embeddings.npy", mmap_mode="r")
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, len(vectors), CHUNK_ROWS * 4):
        chunk = np.asarray(vectors[start : start + CHUNK_ROWS * 4], dtype=np.float32)
        release_pages(vectors, start, start + len(chunk))
        scores = np.concatenate([best_scores, queries @ chunk.T], axis=1)
        rows = np.arange(start, start + len(chunk))
        rows = np.concatenate([best_rows, np.broadcast_to(rows, (len(queries), len(chunk)))], axis=1)
        keep = np.argpartition(-scores, min(hits, scores.shape[1]) - 1, axis=1)[:, :hits]
        best_scores, best_rows = np.take_along_axis(scores, keep, 1), np.take_along_axis(rows, keep, 1)
    order = np.argsort(-best_scores, axis=1, kind="stable")
    best_rows = np.take_along_axis(best_rows, order, 1)
    tmp = cache.temp_path(path)
    with open(tmp, "wb") as f:
        np.save(f, best_rows)
    tmp.replace(path)
    return best_rows


class StoreIds(Sequence[str]):
    """Document ids of a store without a list of millions of strings: SciFact's, then ``synth-<i>``."""

    def __init__(self, real: list[str], total: int):
        self.real, self.total = real, total

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, row: int) -> str:  # type: ignore[override]
        return self.real[row] if row < len(self.real) else f"synth-{row - len(self.real)}"


# ---- the child: one index on one store --------------------------------------------------------------


def run_one(args: argparse.Namespace, source: Path, n: int, kind: str) -> int:
    """Build (or load) ``kind`` over the store of ``n`` synthetic vectors, time its searches, score them."""
    import faiss

    from rankbench.harness.embeddings import Embeddings
    from rankbench.harness.errors import ConfigError
    from rankbench.retrievers.dense import Dense

    faiss.omp_set_num_threads(THREADS)
    folder = ensure_store(source, n, args.seed, args.clusters, args.root)
    queries, qids, qrels = load_queries(source, args.queries)
    truth = exact_top(folder, queries, args.hits)
    vectors = np.load(folder / "embeddings.npy", mmap_mode="r")
    dense = Dense(**dense_kwargs(kind, args.hits, args.overrides, args.memory_limit))
    dense.embeddings = Embeddings(
        StoreIds(json.loads((source / "docids.json").read_text()), len(vectors)), vectors, folder
    )  # type: ignore[arg-type]
    base = {"n": n, "index": kind, "vectors": len(vectors), "settings": settings(args, source)}
    base["retriever_index"] = retriever_index(kind, dense)
    result_path = args.root / "results" / f"{n}__{kind}.json"
    with cache.tally() as used:
        start = time.perf_counter()
        try:
            dense.build_index(args.root / "index")
        except ConfigError as refused:
            log.warning("%s over %s vectors refused: %s", kind, f"{len(vectors):,}", refused)
            result = {**base, "status": "refused", "reason": str(refused), "peak_rss_gb": peak_rss_gb()}
            cache.write_text_atomic(result_path, json.dumps(result, indent=1))
            return 0
        build_s = time.perf_counter() - start
    rss_built = kib_field_gb("/proc/self/status", "VmRSS")
    qps, (scores, rows) = timed_search(dense, queries, args.hits)
    result = {
        **base,
        "status": "ok",
        "build_s": build_s,
        "built": any(counts.get("built") for counts in used.values()) or dense.index_file is None,
        "disk_bytes": du(dense.index_file.parent) if dense.index_file else None,
        "rss_after_build_gb": rss_built * 2**30 / GB if rss_built else None,
        "peak_rss_gb": peak_rss_gb(),
        "qps": qps,
        "recall": recall(rows, truth),
        "ndcg10": ndcg10(scores, rows, dense.embeddings.docids, qids, qrels),
        "memory_estimate_gb": dense.memory_needed(*vectors.shape) / GB,
    }
    cache.write_text_atomic(result_path, json.dumps(result, indent=1))
    return 0


def retriever_index(kind: str, dense: Any) -> str:
    """The leaderboard's ``retriever_index`` for this child's settings."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"index": kind, "hnsw": dense.hnsw, "ivf": dense.ivf, "pq": dense.pq})
    return dense.row_columns(cfg)["index"]  # the leaderboard prefixes the slot: retriever_index


def peak_rss_gb() -> float | None:
    """This process's peak RSS (VmHWM) in GB."""
    peak = kib_field_gb("/proc/self/status", "VmHWM")
    return peak * 2**30 / GB if peak else None


def load_queries(source: Path, count: int | None) -> tuple[np.ndarray, list[str], dict[str, dict[str, int]]]:
    """(query vectors, qids, qrels) of the source, the first ``count`` when given."""
    qids = json.loads((source / "qids.json").read_text())[:count]
    vectors = np.load(source / "query_vectors.npy")[: len(qids)]
    qrels = json.loads((source / "qrels.json").read_text())
    return np.ascontiguousarray(vectors, dtype=np.float32), qids, {q: qrels[q] for q in qids}


def timed_search(dense: Any, queries: np.ndarray, hits: int) -> tuple[float, tuple[np.ndarray, np.ndarray]]:
    """An untimed warm-up search of a few queries, then passes over all of them until ``MIN_PASSES`` and
    ``MIN_SECONDS`` (one pass, when it takes ``SLOW_PASS_S``): q/s."""
    dense.search(queries[:WARMUP_QUERIES], hits)
    passes, spent = 0, 0.0
    found: tuple[np.ndarray, np.ndarray] | None = None
    while passes < MIN_PASSES or spent < MIN_SECONDS:
        start = time.perf_counter()
        found = dense.search(queries, hits)
        spent += time.perf_counter() - start
        passes += 1
        if spent > SLOW_PASS_S:
            break
    log.info("  %d passes, %.1f q/s", passes, passes * len(queries) / spent)
    assert found is not None
    return passes * len(queries) / spent, found


def recall(rows: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each query's exact top ``hits`` that the index found."""
    hits = truth.shape[1]
    return float(np.mean([len(set(a[a >= 0]) & set(b)) / hits for a, b in zip(rows, truth, strict=True)]))


def ndcg10(scores: np.ndarray, rows: np.ndarray, docids: Sequence[str], qids: list[str], qrels: dict) -> float:
    """nDCG@10 on SciFact's qrels, with the evaluator's own metrics code."""
    from rankbench.harness.metrics import evaluate, parse_measures

    run = {
        qid: [(docids[r], float(s)) for r, s in zip(q_rows, q_scores, strict=True) if r >= 0]
        for qid, q_rows, q_scores in zip(qids, rows, scores, strict=True)
    }
    return evaluate(run, qrels, parse_measures(["nDCG@10"]))[0]["nDCG@10"]


# ---- the parent: stores, children, resume ------------------------------------------------------------


def child_command(args: argparse.Namespace, source: Path, n: int, kind: str) -> list[str]:
    """This script again, in this interpreter, measuring one pair with the parent's settings."""
    command = [sys.executable, str(Path(__file__).resolve()), "--_one", str(n), kind, "--source", str(source)]
    command += ["--cache-dir", str(args.cache_dir), "--hits", str(args.hits), "--seed", str(args.seed)]
    command += ["--clusters", str(args.clusters)]
    command += ["--memory-limit", str(args.memory_limit), *(f"--set={s}" for s in args.set)]
    return command + (["--queries", str(args.queries)] if args.queries else [])


def skip_reason(args: argparse.Namespace, source: Path, n: int, kind: str) -> str | None:
    """Why HNSW is not built at this N (its build, extrapolated from a smaller one, would exceed
    ``--hnsw-max-build-s``), or None. The extrapolation is linear in vectors: a lower bound, since
    each insertion's search grows with the graph."""
    if kind != "hnsw":
        return None
    measured = [r for r in all_results(args, source) if r["index"] == "hnsw" and r["status"] == "ok" and r["n"] < n]
    if not measured:
        return None
    base = max(measured, key=lambda r: r["n"])
    estimate = base["build_s"] * (n + base["vectors"] - base["n"]) / base["vectors"]
    if estimate <= args.hnsw_max_build_s:
        return None
    return (
        f"HNSW's build at {base['vectors']:,} vectors took {base['build_s']:.1f} s; linearly extrapolated (a lower "
        f"bound) to {n + base['vectors'] - base['n']:,} vectors it takes {estimate / 60:.0f} min, over "
        f"--hnsw-max-build-s={args.hnsw_max_build_s:.0f}"
    )


def measure_pair(args: argparse.Namespace, source: Path, n: int, kind: str) -> dict[str, Any]:
    """Run one child (or record why not); a failure becomes a result, never an exception."""
    path = args.root / "results" / f"{n}__{kind}.json"
    base = {"n": n, "index": kind, "settings": settings(args, source)}
    if reason := skip_reason(args, source, n, kind):
        result = {**base, "status": "skipped", "reason": reason}
        cache.write_text_atomic(path, json.dumps(result, indent=1))
        return result
    log_path = path.with_suffix(".log")
    child = run_child(child_command(args, source, n, kind), log_path)
    result = stored_result(path, settings(args, source)) if child["returncode"] == 0 else None
    if result is None:
        result = json.loads(path.read_text()) if child["returncode"] == 0 and path.is_file() else None
    if result is None or result.get("settings") != settings(args, source):
        tail = stderr_tail(log_path)
        log.error("%s / %s failed (exit %s):\n%s", n, kind, child["returncode"], tail)
        result = {**base, "status": "failed", "returncode": child["returncode"], "stderr_tail": tail}
    result["wait4_maxrss_gb"] = child["maxrss_gb"] * 2**30 / GB
    cache.write_text_atomic(path, json.dumps(result, indent=1))
    return result


def reusable(path: Path, wanted: dict[str, Any]) -> dict[str, Any] | None:
    """A finished (measured, refused or skipped) result with these settings, or None."""
    try:
        result = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    done = result.get("status") in ("ok", "refused", "skipped")
    return result if done and result.get("settings") == wanted else None


def measure_all(args: argparse.Namespace, source: Path) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Every (N, index) result, finished ones reused; with how many children ran, were reused, failed."""
    (args.root / "results").mkdir(parents=True, exist_ok=True)
    counts = {"ran": 0, "reused": 0, "failed": 0}
    results = []
    for n in args.sizes:
        store = ensure_store(source, n, args.seed, args.clusters, args.root)
        exact_top(store, load_queries(source, args.queries)[0], args.hits)  # here: its memory is not a child's
        for kind in args.indexes:
            stored = reusable(args.root / "results" / f"{n}__{kind}.json", settings(args, source))
            if stored is not None:
                log.info("N=%s / %s: measured before, reused", f"{n:,}", kind)
                counts["reused"] += 1
                results.append(stored)
                continue
            log.info("N=%s / %s: measuring in a child process", f"{n:,}", kind)
            result = measure_pair(args, source, n, kind)
            counts["ran"] += result["status"] != "skipped"
            counts["failed"] += result["status"] == "failed"
            results.append(result)
    return results, counts


def all_results(args: argparse.Namespace, source: Path) -> list[dict[str, Any]]:
    """Every result on disk measured with these settings, by size then index: the report covers earlier runs too."""
    found = []
    for path in (args.root / "results").glob("*__*.json"):
        result = json.loads(path.read_text())
        if result.get("settings") == settings(args, source):
            found.append(result)
    order = {kind: i for i, kind in enumerate(INDEXES)}
    return sorted(found, key=lambda r: (r["n"], order[r["index"]]))


# ---- the report ---------------------------------------------------------------------------------------


def _num(value: Any, fmt: str = ".1f") -> str:
    return "–" if value is None else format(value, fmt)


def with_ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each result with ``qps_over_flat``: its q/s over flat's on the same N (measured back to back)."""
    flat = {r["n"]: r["qps"] for r in results if r["index"] == REFERENCE and r["status"] == "ok"}
    for r in results:
        r["qps_over_flat"] = r["qps"] / flat[r["n"]] if r["status"] == "ok" and r["n"] in flat else None
    return results


def row(r: dict[str, Any]) -> str:
    """One table row; a refused, skipped or failed pair says so in place of its numbers."""
    head = [f"{r['n']:,}", r["index"], r.get("retriever_index", r["index"])]
    if r["status"] != "ok":
        return "| " + " | ".join(head + ["–"] * 8 + [r["status"]]) + " |"
    build = _num(r["build_s"]) + ("" if r["built"] else " (cached)")
    disk = _num(r["disk_bytes"] / GB, ".2f") if r.get("disk_bytes") is not None else "in RAM only"
    cells = [
        build,
        _num(r["peak_rss_gb"], ".2f"),
        _num(r["memory_estimate_gb"], ".2f"),
        disk,
        _num(r["qps"]),
        _num(r["qps_over_flat"], ".1f"),
        _num(r["recall"], ".4f"),
        _num(r["ndcg10"], ".4f"),
    ]
    return "| " + " | ".join(head + cells + ["ok"]) + " |"


def targets(results: list[dict[str, Any]]) -> list[str]:
    """The issue's targets, each with the measurement that decides it (or that it was not measured)."""
    by = {(r["n"], r["index"]): r for r in results if r["status"] == "ok"}
    lines = []
    pq = by.get((1_000_000, "ivfpq"))
    if pq:
        met = pq["recall"] >= 0.95 and (pq["qps_over_flat"] or 0) >= 10
        lines.append(
            f"- 1M, ivfpq recall@100 ≥ 0.95 at ≥ 10× flat's q/s: recall {pq['recall']:.4f}, "
            f"{_num(pq['qps_over_flat'])}× flat → **{'met' if met else 'not met'}**"
        )
    fp16 = [r for (n, kind), r in by.items() if kind == "flat_fp16" and n >= 8_000_000]
    for r in fp16:
        met = r["peak_rss_gb"] <= 10
        lines.append(
            f"- {r['n']:,}, flat_fp16 peak RSS ≤ 10 GB: {r['peak_rss_gb']:.2f} GB → **{'met' if met else 'not met'}**"
        )
    return lines or ["- not measured in this report (needs N = 1,000,000 and N ≥ 8M)"]


def encoding_section(
    encoder_reports: list[Path], source_info: dict[str, Any]
) -> tuple[list[str], list[dict[str, Any]]]:
    """Corpus encoding time for MS MARCO passage, from the encoder benchmark's docs/s on SciFact, per CPU kind.

    Encoding time is taken as proportional to tokens per document (MiniLM's cost is dominated by
    per-token matrix products at these lengths; attention's quadratic part is small below 256).
    """
    reports = [(path, json.loads(path.read_text())) for path in encoder_reports if path.is_file()]
    if not reports:
        return ["No encoder report: run `python benchmarks/dense.py` first.", ""], []
    msmarco_tokens = min(MSMARCO_MEAN_WORDS * source_info["tokens_per_word"], source_info["max_length"])
    speedup = source_info["mean_tokens"] / msmarco_tokens  # MS MARCO passages encode this much faster than SciFact's
    rows, sources = [], []
    for path, report in reports:
        kind = path.stem.removeprefix("dense-")
        meta = report["meta"]
        sources.append(
            f"`{path.relative_to(REPO) if path.is_relative_to(REPO) else path}` ({kind}: {meta.get('docs')} "
            f"SciFact documents, {meta.get('threads')} threads, load {meta.get('load_average_1min')})"
        )
        for r in report["results"]:
            hours = MSMARCO_PASSAGES / (r["docs_per_s"] * speedup) / 3600
            rows.append(
                {
                    "cpu_kind": kind,
                    "system": r["system"],
                    "scifact_docs_per_s": r["docs_per_s"],
                    "ratio": r.get("ratio"),
                    "msmarco_hours": hours,
                }
            )
    lines = [
        f"From {'; '.join(sources)}. Assumption: encoding time is proportional to the "
        f"tokens a document has after truncation. SciFact (measured with the model's tokenizer): "
        f"{source_info['mean_words']:.0f} words and {source_info['mean_tokens']:.0f} tokens per document after "
        f"truncation at {source_info['max_length']}, {source_info['tokens_per_word']:.2f} tokens per word. MS MARCO "
        f"passage: {MSMARCO_PASSAGES:,} passages of ~{MSMARCO_MEAN_WORDS:.0f} words (published mean), so "
        f"~{msmarco_tokens:.0f} tokens and {speedup:.2f}× SciFact's docs/s. A cluster of W workers is W such "
        "processes with the measured threads each, the passages split evenly, no overhead counted. "
        "Absolute docs/s depend on the load of the machine each report ran on; ratio is against "
        "sentence-transformers in the same report.",
        "",
        "| CPU kind | system | SciFact docs/s | ratio | MS MARCO, one machine (h) | "
        + " | ".join(f"per worker, W={w} (h)" for w in WORKERS)
        + " |",
        "|---|---|---:|---:|---:|" + "---:|" * len(WORKERS),
        *(
            f"| {r['cpu_kind']} | {r['system']} | {r['scifact_docs_per_s']:.1f} | {r['ratio'] or 0:.2f} | "
            f"{r['msmarco_hours']:.1f} | " + " | ".join(f"{r['msmarco_hours'] / w:.2f}" for w in WORKERS) + " |"
            for r in rows
        ),
        "",
    ]
    return lines, rows


def mixture(clusters: int) -> str:
    """How the synthetic vectors were drawn, in words."""
    if clusters == 1:
        return "one Gaussian with the SciFact embeddings' mean and full covariance"
    return (
        f"a mixture of {clusters} Gaussians fitted to the SciFact embeddings: k-means centres weighted by "
        "cluster size, sharing the covariance of the embeddings around their centres"
    )


def render(meta: dict[str, Any], results: list[dict[str, Any]], encoding: list[str]) -> str:
    """The Markdown report: one row per (N, index), the targets, what was not measured, encoding, how to rerun."""
    machine = meta["environment"]["machine"]
    source = meta["source_info"]
    lines = [
        "# Dense vector search at scale: SciFact embeddings plus synthetic vectors",
        "",
        f"{meta['queries']} SciFact test queries, {source['model']} ({source['docs']:,} documents), faiss "
        f"{meta['faiss']} on {THREADS} threads; {machine['cpu']} ({machine['cpu_count']} cores; vector flags: "
        f"{', '.join(machine['cpu_flags']) or 'no avx2/avx512/amx'}; avx512f "
        f"{'yes' if 'avx512f' in machine['cpu_flags'] else 'no'}, avx512_bf16 "
        f"{'yes' if 'avx512_bf16' in machine['cpu_flags'] else 'no'}, amx "
        f"{'yes' if any(f.startswith('amx') for f in machine['cpu_flags']) else 'no'}), "
        f"{meta['memory_gb']:.1f} GB RAM, shared with other work (1-minute load at the start/end: "
        f"{meta['load_average_1min'][0]} / {meta['load_average_1min'][1]}): compare q/s within one N.",
        "",
        f"N synthetic vectors ({mixture(meta['clusters'])}, L2-normalised, seed {meta['seed']}) "
        f"follow SciFact's {source['docs']:,} in one float16 store. Each row is one child process: build time is "
        '`Dense.build_index` (training and adding; "cached": a trained index loaded from the cache, memory-mapped), '
        "peak RSS is the child's own high-water mark (query vectors, exact top and store reads included), the "
        "estimate is what `retriever.memory_limit` is checked against. q/s: batch search of all queries at depth "
        f"{meta['hits']}, after a warm-up; × flat: over flat's q/s on the same N, measured just before. "
        f"recall@{meta['hits']}: share of the exact top {meta['hits']} (float32 products over the same store) found; "
        "nDCG@10 on SciFact's test qrels.",
        "",
        f"| N synthetic | index | retriever_index | build s | peak RSS GB | estimate GB | disk GB | q/s | × flat "
        f"| recall@{meta['hits']} | nDCG@10 | status |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        *(row(r) for r in results),
        "",
        "## Targets",
        "",
        *targets(results),
        "",
    ]
    notes = [r for r in results if r["status"] != "ok"]
    if notes:
        lines += ["## Not measured", ""]
        for r in notes:
            why = r.get("reason") or f"exit {r.get('returncode')}:\n\n" + "\n".join(
                f"    {line}" for line in r.get("stderr_tail", "").splitlines()
            )
            lines += [f"- **N={r['n']:,} / {r['index']}** {r['status']}: {why}"]
        lines.append("")
    lines += ["## Encoding MS MARCO passage (extrapolated)", "", *encoding]
    overrides = "".join(f" --set {k}={v}" for k, v in meta["overrides"].items())
    by_indexes: dict[str, list[str]] = {}  # the sizes measured with each set of indexes, one command per set
    for n in dict.fromkeys(r["n"] for r in results):
        kinds = ",".join(r["index"] for r in results if r["n"] == n and r["status"] != "skipped")
        by_indexes.setdefault(kinds, []).append(str(n))
    lines += [
        "## Reproduce",
        "",
        *(
            f"    python benchmarks/dense_scale.py --sizes {','.join(ns)} --indexes {k}{overrides}"
            for k, ns in by_indexes.items()
        ),
        "",
        f"Each (N, index) result is kept under `runs/cache/dense-scale/results/` and reused by later runs with the "
        f"same settings; this report covers all of them (last invocation: `{meta['command']}`).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    source = args.source or prepare_source(args)
    if args._one:
        return run_one(args, source, int(args._one[0]), args._one[1])
    import faiss

    load_before = os.getloadavg()[0]
    _, counts = measure_all(args, source)
    results = with_ratios(all_results(args, source))
    source_info = json.loads((source / "info.json").read_text())
    encoding, encoding_rows = encoding_section(args.encoder_reports, source_info)
    meta = {
        "hits": args.hits,
        "queries": len(load_queries(source, args.queries)[1]),
        "seed": args.seed,
        "clusters": args.clusters,
        "overrides": args.overrides,
        "faiss": faiss.__version__,
        "source_info": source_info,
        "children": counts,
        "memory_gb": (kib_field_gb("/proc/meminfo", "MemTotal") or 0.0) * 2**30 / GB,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "environment": environment(),
        "command": "python benchmarks/dense_scale.py" + "".join(f" {a}" for a in (argv or sys.argv[1:])),
    }
    report = {"meta": meta, "results": results, "encoding": encoding_rows}
    write_report(args.out, "dense_scale", render(meta, results, encoding), report)
    log.info("children: %(ran)d ran, %(reused)d reused, %(failed)d failed", counts)
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
