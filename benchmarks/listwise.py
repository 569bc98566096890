"""LLM cost of the three listwise strategies at one depth: calls, tokens and seconds per query.

    python benchmarks/listwise.py                          # SmolLM2-135M, BM25 top-100, 5 SciFact test queries
    python benchmarks/listwise.py --queries 1 --depth 10   # a smoke run

Each strategy reranks the same BM25 top ``--depth`` of the first ``--queries`` SciFact test
queries through the real pipeline (``evaluate.py``'s ``run_experiment``) with the same model,
prompt wording and passage budget. ``--passage-tokens`` defaults to 64 so that ``full`` fits
SmolLM2's 8,192-token context at depth 100. Every strategy starts from an empty answer cache,
so every call is made. Counts come from the
reranker's own statistics. The report goes to ``<out>/listwise.md`` and ``<out>/listwise.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere: import this checkout's packages
    sys.path.insert(0, str(REPO))

from benchmarks.common import add_path_options, environment, write_report  # noqa: E402
from rankbench.harness.config import compose  # noqa: E402
from rankbench.harness.experiment import run_experiment  # noqa: E402

log = logging.getLogger("bench.listwise")

STRATEGIES = {
    "sliding": "reranker=listwise",
    "full": "reranker=listwise",
    "first_token": "reranker=listwise_first_token",
}


def measure(strategy: str, args: argparse.Namespace, runs_dir: Path) -> dict:
    overrides = [
        STRATEGIES[strategy],
        f"reranker.strategy={strategy}",
        f"reranker.depth={args.depth}",
        f"reranker.passage_tokens={args.passage_tokens}",
        f"max_queries={args.queries}",
        f"data_root={args.data_root}",
        f"runs_dir={runs_dir}",
        f"cache_dir={args.cache_dir}",  # the BM25 index and run, shared
        f"reranker.cache_dir={runs_dir / 'answers'}",  # LLM answers: empty, so every call is made
        *args.override,
    ]
    cfg = compose(overrides)
    outcome = run_experiment(cfg)
    stats = json.loads((outcome.run_dir / "metrics.json").read_text())["reranker_stats"]
    n = len(stats["per_query"])
    return {
        "strategy": strategy,
        "queries": n,
        "calls_per_query": stats["llm_calls"] / n,
        "prompt_tokens_per_query": stats["prompt_tokens"] / n,
        "completion_tokens_per_query": stats["completion_tokens"] / n,
        "seconds_per_query": stats["llm_seconds_per_query"],
        "failed": stats["llm_failed"],
        "malformed": stats["llm_malformed"],
        "ndcg@10": outcome.metrics["nDCG@10"],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=5)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--passage-tokens", type=int, default=64)
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    parser.add_argument("--override", nargs="*", default=[], help="more Hydra overrides, e.g. llm@reranker.llm=openai")
    add_path_options(parser, "BM25 index and run cache")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        results = [measure(s, args, Path(tmp) / s) for s in args.strategies]
    report = {
        "model": "HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1, transformers)",
        "depth": args.depth,
        "passage_tokens": args.passage_tokens,
        "queries": args.queries,
        "overrides": args.override,
        **environment(),
        "results": results,
    }
    write_report(args.out, "listwise", render(report), report)
    return report


def render(report: dict) -> str:
    lines = [
        f"# Listwise strategies at depth {report['depth']}: LLM cost per query",
        "",
        f"{report['model']}; BM25 top-{report['depth']} of the first {report['queries']} SciFact test queries; "
        f"passages cut to {report['passage_tokens']} tokens; window 20, stride 10; overrides "
        f"{report['overrides'] or 'none'}; load average at the end "
        f"{', '.join(f'{v:.2f}' for v in report['load_average'])}.",
        "",
        "| strategy | calls/query | prompt tokens/query | completion tokens/query | seconds/query | malformed | "
        "failed | nDCG@10 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['strategy']} | {r['calls_per_query']:.1f} | {r['prompt_tokens_per_query']:.0f} | "
        f"{r['completion_tokens_per_query']:.0f} | {r['seconds_per_query']:.1f} | {r['malformed']} | "
        f"{r['failed']} | {r['ndcg@10']:.4f} |"
        for r in report["results"]
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
