"""Quickstart: BM25, BM25 then a cross-encoder, and a BM25 + dense hybrid on SciFact, in one DataFrame.

    python examples/quickstart.py                                   # a cross-encoder from the Hugging Face Hub
    python examples/quickstart.py --model runs/models/ce-minilm-scifact --queries 0   # your own, every query

Each system is cached like a command-line run (runs/cache), so a second call costs almost nothing.
The same systems from the command line:

    python evaluate.py retriever=bm25
    python evaluate.py retriever=bm25 reranker=cross_encoder reranker.model=MODEL reranker.depth=20
    python evaluate.py retriever=hybrid
"""

from __future__ import annotations

import argparse

import pandas as pd

import rankbench as rb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="cross-encoder/ms-marco-MiniLM-L-6-v2", help="cross-encoder id or folder")
    parser.add_argument("--depth", type=int, default=20, help="BM25 hits the cross-encoder reranks")
    parser.add_argument("--queries", type=int, default=50, help="the first N test queries (0: all 300)")
    parser.add_argument("--runs", default="runs", help="runs folder (its cache/ is reused)")
    args = parser.parse_args()

    bm25 = rb.BM25()
    frame = rb.experiment(
        [bm25, bm25 >> rb.CrossEncoder(args.model) % args.depth, rb.Hybrid()],
        "scifact",
        measures=["nDCG@10", "R@100"],
        names=["BM25", "BM25 >> cross-encoder", "BM25 + dense (RRF)"],
        baseline=0,
        max_queries=args.queries or None,
        runs_dir=args.runs,
    )
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.precision", 4):
        print(frame)


if __name__ == "__main__":
    main()
