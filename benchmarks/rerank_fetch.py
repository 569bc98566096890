"""How much of a rerank goes to fetching texts: BM25 top-100 -> cross-encoder on a 1M-document corpus.

    python benchmarks/rerank_fetch.py                       # the 1M corpus of `make bench-scale`
    python benchmarks/rerank_fetch.py --corpus DIR --queries 10 --depth 100

For each of the first ``--queries`` SciFact test queries, BM25 (numpy engine) retrieves the top
``--depth`` documents; their texts are fetched from the corpus's document store
(``corpus.get_many``, as harness/rerank.py does) and scored by the cross-encoder (all-MiniLM-L6-v2
with a seeded untrained head by default: the cost of a forward pass does not depend on its
training). Fetch and scoring are timed per query; the report gives the fetch share of the rerank
time. The store is built once before the timing (its build time is reported apart), as a second
run of any experiment on the corpus finds it built. Report: ``<out>/rerank_fetch.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere: import this checkout's packages
    sys.path.insert(0, str(REPO))

from benchmarks.common import environment, write_report  # noqa: E402
from benchmarks.cross_encoder import fresh_head  # noqa: E402
from rankbench.harness.datasets import load_dataset  # noqa: E402
from rankbench.rerankers.cross_encoder import CrossEncoder  # noqa: E402
from rankbench.retrievers.bm25 import BM25  # noqa: E402

log = logging.getLogger("bench.rerank_fetch")
SCALE = REPO / "runs" / "cache" / "scale"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=SCALE / "scifact+1m", help="BEIR folder (scale.py builds it)")
    parser.add_argument("--cache-dir", type=Path, default=SCALE, help="holds index/ (BM25) and docstore/")
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--model", default="fresh", help="cross-encoder folder, or 'fresh' (untrained head)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.corpus.is_dir():
        raise SystemExit(f"{args.corpus} does not exist: run `make bench-scale` (or scale.py --sizes 1000000) first")
    dataset = load_dataset({"name": args.corpus.name, "path": str(args.corpus), "split": "test"}, None, args.cache_dir)
    queries = dataset.queries[: args.queries]
    bm25 = BM25(hits=args.depth)
    bm25.index(dataset.corpus, args.cache_dir / "index")
    run = bm25.retrieve(queries)
    started = time.perf_counter()
    dataset.corpus.get_many({run[queries[0].qid][0][0]})  # builds the store, or finds it built
    store_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        model = fresh_head(Path(tmp) / "ce") if args.model == "fresh" else args.model
        scorer = CrossEncoder(str(model), depth=args.depth)
        fetch, score = [], []
        for query in queries:
            wanted = [docid for docid, _ in run[query.qid]]
            started = time.perf_counter()
            docs = dataset.corpus.get_many(set(wanted))
            fetched = time.perf_counter()
            scorer.score([(query, docs[d]) for d in wanted])
            fetch.append(fetched - started)
            score.append(time.perf_counter() - fetched)
    share = sum(fetch) / (sum(fetch) + sum(score))
    report = {
        "corpus": str(args.corpus),
        "queries": len(queries),
        "depth": args.depth,
        "model": str(args.model),
        "store_build_or_open_s": store_s,
        "fetch_ms": [f * 1e3 for f in fetch],
        "score_s": score,
        "fetch_share": share,
        **environment(),
    }
    markdown = "\n".join(
        [
            f"# Text fetching in a rerank: BM25 top-{args.depth} -> cross-encoder, {len(queries)} queries",
            "",
            f"Corpus `{args.corpus.name}`; store ready in {store_s:.1f} s (built once per corpus, then opened).",
            "",
            "| per query | median | max |",
            "|---|---:|---:|",
            f"| fetch {args.depth} texts (ms) | {statistics.median(fetch) * 1e3:.2f} | {max(fetch) * 1e3:.2f} |",
            f"| cross-encoder on {args.depth} pairs (s) | {statistics.median(score):.2f} | {max(score):.2f} |",
            "",
            f"Fetching is **{share:.3%}** of the rerank time (target: under 5%).",
            "",
            f"Command: `python benchmarks/rerank_fetch.py --queries {args.queries} --depth {args.depth}`; "
            f"machine: {report['machine']}.",
        ]
    )
    write_report(args.out, "rerank_fetch", markdown, report)
    print(markdown)


if __name__ == "__main__":
    main()
