"""What every benchmark script shares: where the data, caches and reports live, and how a report lands.

A report is a Markdown table for people and a JSON file for tools, both written atomically so
that an interrupted benchmark never leaves half a report beside the previous good one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
from typing import Any

from rankbench.harness.cache import write_text_atomic
from rankbench.harness.machine import cpu
from rankbench.harness.types import Query, Run

REPO = Path(__file__).resolve().parent.parent


def add_path_options(parser: argparse.ArgumentParser, cache_help: str = "index and model cache") -> None:
    """``--data-root`` (holds beir/scifact.zip), ``--cache-dir`` and ``--out`` with the project's defaults."""
    parser.add_argument(
        "--data-root",
        default=os.environ.get("RANKBENCH_DATA_ROOT") or str(REPO.parent / "shared" / "data"),
        help="holds beir/scifact.zip",
    )
    parser.add_argument("--cache-dir", type=Path, default=REPO / "runs" / "cache", help=cache_help)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results", help="report folder")


def environment(**versions: str) -> dict[str, Any]:
    """Where the numbers come from: CPU, cores, platform, versions, and the load at the end (others' work slows us)."""
    machine = {"cpu_count": os.cpu_count(), "platform": platform.platform(), **cpu(), **versions}
    return {"machine": machine, "load_average": os.getloadavg()}


def write_report(out: Path, name: str, markdown: str, report: dict[str, Any]) -> None:
    """``<out>/<name>.md`` and ``<out>/<name>.json``."""
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / f"{name}.md", markdown.rstrip("\n") + "\n")
    write_text_atomic(out / f"{name}.json", json.dumps(report, indent=2) + "\n")


def drop_self_hits(run: Run) -> Run:
    """BEIR convention (SciFact's qids and docids share one number space): a query never retrieves itself."""
    return {qid: [(d, s) for d, s in hits if d != qid] for qid, hits in run.items()}


def compare_runs(run: Run, reference: Run) -> tuple[bool, float]:
    """(same docids in the same order for every query, largest score difference): "the same run" is
    both, with the difference under 1e-5."""
    same_order = all([d for d, _ in run[q]] == [d for d, _ in reference.get(q, [])] for q in run)
    same_order = same_order and set(run) >= {q for q, hits in reference.items() if hits}
    pairs = ((x, y) for q in run for (_, x), (_, y) in zip(run[q], reference.get(q, []), strict=False))
    return same_order, max((abs(x - y) for x, y in pairs), default=0.0)


def stemmer() -> tuple[Any, str]:
    """bm25s recommends PyStemmer's English Snowball stemmer; without it bm25s runs unstemmed."""
    try:
        import Stemmer
    except ImportError:
        return None, "no stemmer: PyStemmer is not installed (bm25s's recommended stemmer)"
    return Stemmer.Stemmer("english"), "PyStemmer English stemmer"


class Bm25sPeer:
    """bm25s (Lucene BM25 variant) on its own tokens: scikit-learn token pattern, English stopwords,
    PyStemmer when installed. Indexed once, searched at any depth; ``n_threads`` 0 is sequential."""

    def __init__(self, texts: list[str], docids: list[str], k1: float, b: float, n_threads: int = 0):
        import bm25s

        self._bm25s = bm25s
        self.stem, how = stemmer()
        self.docids = docids
        self.n_threads = n_threads
        tokens = bm25s.tokenize(texts, stopwords="en", stemmer=self.stem, show_progress=False)
        self.retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
        self.retriever.index(tokens, show_progress=False)
        threads = f"{n_threads} threads" if n_threads else "sequential retrieval (n_threads=0)"
        self.note = f"tokeniser: bm25s.tokenize, English stopwords, {how}; {threads}"

    @property
    def postings(self) -> int:
        """Stored (term, document) scores: bm25s's postings."""
        return int(self.retriever.scores["data"].size)

    def search(self, queries: list[Query], hits: int) -> Run:
        """Top ``hits`` per query, self-hits dropped (after the cut, as Anserini's -removeQuery does)."""
        texts = [q.text for q in queries]
        query_tokens = self._bm25s.tokenize(texts, stopwords="en", stemmer=self.stem, show_progress=False)
        found, scores = self.retriever.retrieve(query_tokens, k=hits, show_progress=False, n_threads=self.n_threads)
        return drop_self_hits(
            {
                q.qid: [(self.docids[i], float(s)) for i, s in zip(found[row], scores[row], strict=True)]
                for row, q in enumerate(queries)
            }
        )
