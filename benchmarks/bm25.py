"""BM25 throughput and quality on SciFact: rankbench's Lucene path against its peers, in one process.

    python benchmarks/bm25.py                    # all 300 SciFact test queries
    python benchmarks/bm25.py --queries 20       # a quick smoke run

rankbench runs twice: with its default ``engine="numpy"`` (Lucene's BM25 re-implemented
exactly over postings exported from the Lucene index) and with ``engine="anserini"``
(Anserini's SearchCollection, the reference), and the two runs are compared hit by hit.
Every system answers the same queries; each is scored with ``rankbench.harness.metrics.evaluate`` on
the same qrels, so the quality column is comparable and a fast system that ranks differently
shows it. Throughput is queries per second over the whole query set (query analysis included,
index building excluded): the median of ``--repeats`` timed passes after one untimed warm-up
pass (the warm-up loads classes, JIT-compiles and fills the page cache, which a long-running
experiment pays once). Peers:

- pyserini ``LuceneSearcher.batch_search`` on the very same Lucene index, docid==qid hits
  dropped afterwards as ``pyserini.search.lucene --remove-query`` does;
- bm25s with its own tokeniser (scikit-learn token pattern, English stopwords) and, when
  PyStemmer is installed, its recommended Snowball stemmer; sequential retrieval (its
  default; its multiprocessing pool was slower on this 2-core machine);
- rank_bm25's ``BM25Okapi`` on the same tokens as bm25s (it has no tokeniser of its own);
  it scores every document in Python for every query, so it may be timed on a subset.

The report goes to ``<out>/bm25.md`` and the raw numbers to ``<out>/bm25.json``.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere: import this checkout's packages
    sys.path.insert(0, str(REPO))

from benchmarks.common import Bm25sPeer, add_path_options, compare_runs, drop_self_hits, stemmer, write_report  # noqa: E402
from rankbench.harness import java  # noqa: E402
from rankbench.harness.datasets import load_dataset  # noqa: E402
from rankbench.harness.metrics import evaluate, parse_measures  # noqa: E402
from rankbench.harness.types import Query, Run  # noqa: E402
from rankbench.retrievers.bm25 import BM25  # noqa: E402

log = logging.getLogger("bench.bm25")

K1, B, THREADS = 0.9, 0.4, 2
HITS = (1000, 100)
MEASURES = parse_measures(["nDCG@10", "R@100"])
SCIFACT = {
    "name": "scifact",
    "beir_name": "scifact",
    "split": "test",
    "path": None,
    "ir_datasets_id": "beir/scifact/test",
    "topics": None,
    "qrels": None,
}

Search = Callable[[list[Query]], Run]


@dataclass
class Result:
    """One system at one depth: throughput over the timed passes and the quality of its run."""

    system: str
    hits: int
    queries: int
    qps: float
    seconds: list[float]
    metrics: dict[str, float]
    note: str = ""
    ratio: float | None = None  # rankbench's q/s divided by this system's, at the same depth
    extra: dict[str, Any] = field(default_factory=dict)


def peak_rss_mb() -> float:
    """Peak resident set of this process (JVM included: it lives in-process through pyjnius)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(
    system: str,
    hits: int,
    search: Search,
    queries: list[Query],
    qrels: dict[str, dict[str, int]],
    repeats: int,
    warmup: bool = True,
    note: str = "",
) -> Result:
    """Time ``search`` over ``queries``: median of ``repeats`` passes after an optional warm-up."""
    log.info("%s @%d: %d queries, %d timed pass(es)%s", system, hits, len(queries), repeats, ", warm-up" * warmup)
    if warmup:
        search(queries)
    seconds, run = [], {}
    for i in range(repeats):
        start = time.perf_counter()
        run = search(queries)
        seconds.append(time.perf_counter() - start)
        log.info("  pass %d: %.2f s (%.1f q/s)", i + 1, seconds[-1], len(queries) / seconds[-1])
    qrels_subset = {q.qid: qrels[q.qid] for q in queries if q.qid in qrels}
    metrics, _ = evaluate(run, qrels_subset, MEASURES)
    qps = len(queries) / statistics.median(seconds)
    log.info("  %s @%d: %.1f q/s, %s", system, hits, qps, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    return Result(system, hits, len(queries), qps, seconds, metrics, note, extra={"run": run})


def rankbench_search(retriever: BM25) -> Search:
    return retriever.retrieve


def same_run(fast: Result, reference: Result) -> str:
    """Whether two measured runs have the same docids in the same order and scores equal to 1e-5."""
    a, b = fast.extra.get("run"), reference.extra.get("run")
    if a is None or b is None:
        return ""
    same_order, worst = compare_runs(a, b)
    fast.extra["equals_searchcollection"] = reference.extra["equals_numpy"] = bool(same_order and worst < 1e-5)
    return f"; numpy engine's run: {'same' if same_order else 'DIFFERENT'} rankings, max |score diff| {worst:.1e}"


def pyserini_search(index_dir: Path, hits: int) -> Search:
    """``LuceneSearcher.batch_search``: every hit crosses the Java bridge as an object."""
    from pyserini.search.lucene import LuceneSearcher  # after java.autoclass: the JVM is ours

    searcher = LuceneSearcher(str(index_dir))
    searcher.set_bm25(K1, B)

    def search(queries: list[Query]) -> Run:
        found = searcher.batch_search([q.text for q in queries], [q.qid for q in queries], k=hits, threads=THREADS)
        return drop_self_hits({qid: [(h.docid, h.score) for h in found[qid]] for qid in found})

    return search


def bm25s_search(peer: Bm25sPeer, hits: int) -> Search:
    """bm25s at one depth, on the index ``peer`` built once."""
    return lambda queries: peer.search(queries, hits)


def rank_bm25_search(texts: list[str], docids: list[str], hits: int) -> Search:
    """rank_bm25's BM25Okapi (its idf floors negative values at 0.25 x mean idf), bm25s's tokens."""
    import bm25s
    import numpy as np
    from rank_bm25 import BM25Okapi

    stem, _ = stemmer()
    corpus_tokens = bm25s.tokenize(texts, stopwords="en", stemmer=stem, return_ids=False, show_progress=False)
    model = BM25Okapi(corpus_tokens, k1=K1, b=B)

    def search(queries: list[Query]) -> Run:
        query_tokens = bm25s.tokenize(
            [q.text for q in queries], stopwords="en", stemmer=stem, return_ids=False, show_progress=False
        )
        run: Run = {}
        for q, terms in zip(queries, query_tokens, strict=True):
            scores = model.get_scores(terms)
            top = np.argsort(-scores, kind="stable")[:hits]
            run[q.qid] = [(docids[i], float(scores[i])) for i in top]
        return drop_self_hits(run)

    return search


def render(meta: dict[str, Any], results: list[Result]) -> str:
    """The Markdown report: one table per depth, then how it was measured."""
    lines = [
        "# BM25 throughput on SciFact",
        "",
        f"{meta['queries']} test queries, k1={K1} b={B}, {THREADS} threads where a system has them; "
        f"{meta['cpu']} ({meta['cores']} cores). Peak RSS of the benchmark process: "
        f"{meta['peak_rss_mb']:.0f} MB (JVM included). 1-minute load average before/after: "
        f"{meta['load_average_1min'][0]} / {meta['load_average_1min'][1]} (other work on the machine slows every "
        "system; compare within one report).",
        "",
        "q/s: queries per second over the whole query set, query analysis included, index build excluded; "
        "median of the timed passes after an untimed warm-up pass. ratio: rankbench's q/s over the system's "
        "at the same depth (>1: rankbench is faster).",
        "",
    ]
    for hits in sorted({r.hits for r in results}, reverse=True):
        lines += [
            f"## {hits} hits per query",
            "",
            "| system | queries | q/s | ratio | nDCG@10 | R@100 | passes (s) |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for r in (r for r in results if r.hits == hits):
            ratio = f"{r.ratio:.2f}" if r.ratio is not None else "—"
            passes = ", ".join(f"{s:.2f}" for s in r.seconds)
            lines.append(
                f"| {r.system} | {r.queries} | {r.qps:.1f} | {ratio} | {r.metrics['nDCG@10']:.4f} "
                f"| {r.metrics['R@100']:.4f} | {passes} |"
            )
        lines.append("")
    notes = [f"- **{r.system}** (@{r.hits}): {r.note}" for r in results if r.note]
    if notes:
        lines += ["## Notes", "", *notes, ""]
    lines += [
        "## Reproduce",
        "",
        f"    {meta['command']}",
        "",
        f"Python {meta['python']}, Anserini jar {meta['anserini']}, data {meta['data']}.",
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=None, help="time only the first N queries (smoke run)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per system (median reported)")
    parser.add_argument(
        "--rank-bm25-queries",
        type=int,
        default=None,
        help="time rank_bm25 on the first N queries only (it scores the whole corpus per query in Python)",
    )
    add_path_options(parser, "Lucene index cache")
    parser.add_argument("--heap", default="2g", help="JVM -Xmx")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    java.configure(heap=args.heap)
    load_before = os.getloadavg()[0]
    dataset = load_dataset(SCIFACT, args.data_root)
    queries = dataset.queries[: args.queries] if args.queries else dataset.queries
    log.info("SciFact: %d queries timed", len(queries))

    engines = ("numpy", "anserini")
    ours = {
        (engine, hits): BM25(
            k1=K1, b=B, hits=hits, threads=THREADS, remove_query=True, engine=engine, java={"heap": args.heap}
        )
        for engine in engines
        for hits in HITS
    }
    for retriever in ours.values():
        retriever.index(dataset.corpus, args.cache_dir)  # cached: built once, reused
    index_dir = ours["anserini", HITS[0]].index_dir
    assert index_dir is not None

    docs = list(dataset.corpus)
    texts = [f"{d.title} {d.text}" if d.title else d.text for d in docs]
    docids = [d.docid for d in docs]

    peer = Bm25sPeer(texts, docids, K1, B)  # sequential retrieval: its default, and faster here than its pool
    results: list[Result] = []
    for hits in HITS:
        common = {"queries": queries, "qrels": dataset.qrels, "repeats": args.repeats}
        base = measure("rankbench BM25 (numpy engine)", hits, rankbench_search(ours["numpy", hits]), **common)
        base.note = "exact Lucene BM25 in numpy; the default engine"
        results.append(base)
        reference = measure(
            "rankbench BM25 (SearchCollection)", hits, rankbench_search(ours["anserini", hits]), **common
        )
        reference.note = "Anserini SearchCollection writing a TREC run file" + same_run(base, reference)
        results.append(reference)
        results.append(measure("pyserini batch_search", hits, pyserini_search(index_dir, hits), **common))
        results.append(measure("bm25s", hits, bm25s_search(peer, hits), note=peer.note, **common))
        subset = queries[: args.rank_bm25_queries] if args.rank_bm25_queries else queries
        note = "same tokens as bm25s; scores every document per query in Python"
        if len(subset) < len(queries):
            note += f"; timed on the first {len(subset)} queries only"
        search = rank_bm25_search(texts, docids, hits)
        results.append(measure("rank_bm25 BM25Okapi", hits, search, subset, dataset.qrels, args.repeats, note=note))
        for r in results:
            if r.hits == hits and r is not base:
                r.ratio = base.qps / r.qps
        base.ratio = 1.0

    meta = {
        "dataset": "scifact test",
        "queries": len(queries),
        "k1": K1,
        "b": B,
        "threads": THREADS,
        "repeats": args.repeats,
        "peak_rss_mb": peak_rss_mb(),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "anserini": Path(java.anserini_jar()).name,
        "data": str(Path(args.data_root) / "beir" / "scifact.zip"),
        "command": "python benchmarks/bm25.py" + "".join(f" {a}" for a in (argv or sys.argv[1:])),
    }
    for r in results:
        r.extra.pop("run", None)  # runs were kept for the comparison only
    write_report(args.out, "bm25", render(meta, results), {"meta": meta, "results": [asdict(r) for r in results]})
    log.info("peak RSS %.0f MB; wrote %s and %s", meta["peak_rss_mb"], args.out / "bm25.md", args.out / "bm25.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
