"""Three first stages side by side on SciFact test: what they keep on disk, how fast they answer, how well.

    python benchmarks/first_stage.py --generative runs/models/gen-minilm-scifact
    python benchmarks/first_stage.py --generative <folder> --queries 10 --latency-queries 5   # a smoke run

BM25 (Lucene index, numpy engine), dense all-MiniLM-L6-v2 (exact inner product over float16
embeddings) and the generative retriever trained here (``make train-gen``) are built as
``evaluate.py`` builds them (cached indexes are reused), then each retrieves 100 hits for the
same queries twice: all queries in one call (throughput, as ``evaluate.py`` runs them) and one
query per call (latency: median and 95th percentile). The systems take turns, so other work on
the machine slows them alike; ratios are against BM25. Sizes are what each reads to answer: the
corpus index (Lucene index; embeddings; for the generative model, its weights, since the corpus
lives there) and the model that encodes queries. nDCG@10 and R@100 are scored on the timed runs.
The report goes to ``<out>/first_stage.md`` and ``<out>/first_stage.json``.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere: import this checkout's packages
    sys.path.insert(0, str(REPO))

from hydra.utils import instantiate  # noqa: E402

from benchmarks.common import add_path_options, environment, write_report  # noqa: E402
from rankbench.harness.config import compose  # noqa: E402
from rankbench.harness.datasets import load_dataset  # noqa: E402
from rankbench.harness.metrics import evaluate, parse_measures  # noqa: E402
from rankbench.harness.models import resolve_model  # noqa: E402
from rankbench.harness.types import Query  # noqa: E402

log = logging.getLogger("bench.first_stage")

MEASURES = parse_measures(["nDCG@10", "R@100"])
SYSTEMS = ("bm25", "dense", "generative")


def folder_bytes(folder: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in folder.rglob(pattern) if p.is_file())


def sizes(system: str, retriever: Any) -> dict[str, int]:
    """(corpus index bytes, query-model bytes) of one built retriever."""
    if system == "bm25":
        return {"index_bytes": folder_bytes(retriever.index_dir), "query_model_bytes": 0}
    if system == "dense":
        encoder = folder_bytes(resolve_model(retriever.model), "*.safetensors")
        return {"index_bytes": folder_bytes(retriever.embeddings.folder, "*.npy"), "query_model_bytes": encoder}
    folder = resolve_model(retriever.model_name)  # the corpus lives in the weights and the id map
    return {
        "index_bytes": sum(folder_bytes(folder, f) for f in ("weights.safetensors", "docids.json")),
        "query_model_bytes": 0,
    }


def configs(args: argparse.Namespace) -> dict[str, Any]:
    """Each system's config, composed as evaluate.py would compose it."""
    common = ["retriever.hits=100", f"data_root={args.data_root}", *args.override]
    extra = {"generative": [f"retriever.model={args.generative}"]}
    return {s: compose([f"retriever={s}", *common, *extra.get(s, [])]) for s in SYSTEMS}


def build(cfg: Any, corpus: Any, cache_dir: Path) -> tuple[Any, float]:
    """(indexed retriever, seconds to index or load it)."""
    retriever = instantiate(cfg.retriever, _recursive_=False)
    started = time.perf_counter()
    retriever.index(corpus, cache_dir)
    return retriever, time.perf_counter() - started


def timed(retrieve, queries: list[Query]) -> tuple[dict, float]:
    started = time.perf_counter()
    run = retrieve(queries)
    return run, time.perf_counter() - started


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    cfgs = configs(args)
    dataset = load_dataset(cfgs["bm25"].dataset, cfgs["bm25"].data_root)  # the same for all three
    built = {system: build(cfg, dataset.corpus, args.cache_dir) for system, cfg in cfgs.items()}
    queries = dataset.queries[: args.queries] if args.queries else dataset.queries
    results = {s: {"system": s, "index_s": seconds, **sizes(s, r)} for s, (r, seconds) in built.items()}
    for system, (retriever, _) in built.items():  # throughput: every query in one call
        run, seconds = timed(retriever.retrieve, queries)
        aggregate, _ = evaluate(run, {q.qid: dataset.qrels[q.qid] for q in queries}, MEASURES)
        results[system] |= {
            "queries": len(queries),
            "batch_s": seconds,
            "batch_ms_per_query": 1e3 * seconds / len(queries),
        }
        results[system] |= {"nDCG@10": aggregate["nDCG@10"], "R@100": aggregate["R@100"]}
    latencies: dict[str, list[float]] = {s: [] for s in built}
    for query in queries[: args.latency_queries]:  # latency: one query per call, systems taking turns
        for system, (retriever, _) in built.items():
            latencies[system].append(timed(retriever.retrieve, [query])[1])
    for system, seconds in latencies.items():
        ordered = sorted(seconds)
        results[system] |= {
            "latency_queries": len(ordered),
            "latency_ms_median": 1e3 * statistics.median(ordered),
            "latency_ms_p95": 1e3 * ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
        }
    base = results["bm25"]
    for r in results.values():
        r["latency_vs_bm25"] = r["latency_ms_median"] / base["latency_ms_median"]
        r["size_vs_bm25"] = r["index_bytes"] / base["index_bytes"]
    return list(results.values())


def render(report: dict[str, Any]) -> str:
    mb = 1 << 20
    lines = [
        "# First stages on SciFact test: size, speed, effectiveness",
        "",
        f"{report['queries']} queries, 100 hits; latency over the first {report['latency_queries']} queries, one per "
        f"call; {report['machine']['cpu_count']} cores, load average at the end "
        f"{', '.join(f'{v:.2f}' for v in report['load_average'])}. Generative model: `{report['generative']}`.",
        "",
        "| system | corpus index MB | × BM25 | query model MB | ms/query, all in one call | latency ms median / p95 "
        "| × BM25 | nDCG@10 | R@100 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['system']} | {r['index_bytes'] / mb:.1f} | {r['size_vs_bm25']:.2f} | "
        f"{r['query_model_bytes'] / mb:.1f} | {r['batch_ms_per_query']:.2f} | "
        f"{r['latency_ms_median']:.1f} / {r['latency_ms_p95']:.1f} | {r['latency_vs_bm25']:.1f} | "
        f"{r['nDCG@10']:.4f} | {r['R@100']:.4f} |"
        for r in report["results"]
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--generative", required=True, help="a model folder from rankbench.retrievers.train_generative")
    parser.add_argument("--queries", type=int, default=None, help="only the first N test queries (default all)")
    parser.add_argument("--latency-queries", type=int, default=50, help="queries timed one per call")
    parser.add_argument("--override", nargs="*", default=[], help="more Hydra overrides, e.g. dataset.path=...")
    add_path_options(parser, "index, embedding and run cache")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    results = measure(args)
    report = {
        "generative": args.generative,
        "queries": results[0]["queries"],
        "latency_queries": results[0]["latency_queries"],
        "overrides": args.override,
        **environment(),
        "results": results,
    }
    write_report(args.out, "first_stage", render(report), report)
    return report


if __name__ == "__main__":
    main()
