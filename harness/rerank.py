"""Pointwise reranking shared by every scorer: depth cut, score cache, stable tail.

A scorer only turns (query, document) pairs into scores. This driver reranks the top
``depth`` hits of each query, fetches cached scores first and scores only the missing pairs,
and keeps every hit below the depth in its first-stage order beneath the reranked ones.
With ``interpolate`` the head is ordered by a weighted sum of reranker and first-stage scores;
a named weight (``interpolate=dev``) is the number the scorer resolved it to (its ``interpolate``).
"""

from __future__ import annotations

from typing import Protocol

from tqdm import tqdm

from rankbench.harness.errors import ConfigError, DataError
from rankbench.harness.fusion import normalize
from rankbench.harness.score_cache import ScoreCache
from rankbench.harness.types import Corpus, Doc, Query, Run


class PointwiseScorer(Protocol):
    def score(self, pairs: list[tuple[Query, Doc]]) -> list[float]: ...


def rerank_pointwise(
    scorer: PointwiseScorer,
    queries: list[Query],
    run: Run,
    corpus: Corpus,
    depth: int,
    cache: ScoreCache,
    interpolate: float | str | None = None,
) -> Run:
    weight = interpolation_weight(scorer, interpolate)
    wanted = {docid for q in queries for docid, _ in run.get(q.qid, [])[:depth]}
    docs = corpus.get_many(wanted)
    if missing := wanted - docs.keys():
        raise DataError(f"{len(missing)} retrieved documents are not in {corpus.source}: {sorted(missing)[:5]}")
    reranked: Run = {}
    for query in tqdm(queries, unit="query", desc="rerank"):
        hits = run.get(query.qid, [])
        head, tail = [docid for docid, _ in hits[:depth]], hits[depth:]
        scores = cache.get(query.qid, query.text, head)
        todo = [docid for docid in head if docid not in scores]
        if todo:
            fresh = dict(zip(todo, scorer.score([(query, docs[d]) for d in todo]), strict=True))
            cache.put(query.qid, query.text, fresh)
            scores.update(fresh)
        final = interpolated(scores, hits[:depth], weight) if weight else scores
        top = sorted(head, key=lambda d: -final[d])  # stable: ties keep first-stage order
        reranked[query.qid] = [(d, final[d]) for d in top] + beneath(tail, min(final.values(), default=0.0))
    return reranked


def interpolation_weight(scorer: PointwiseScorer, interpolate: float | str | None) -> float | None:
    """A number as configured; a name (``dev``) as the scorer resolved it from its model folder."""
    if not isinstance(interpolate, str):
        return interpolate
    resolved = getattr(scorer, "interpolate", None)
    if not isinstance(resolved, int | float):
        raise ConfigError(f"reranker.interpolate={interpolate!r}: this reranker resolves no named weight")
    return float(resolved)


def interpolated(scores: dict[str, float], first: list[tuple[str, float]], weight: float) -> dict[str, float]:
    """(1 - weight) z(reranker) + weight z(first stage), z-scores per query over the reranked head.

    A reranker trained on little data knows things the first stage does not and misses some it
    knows; a weighted sum keeps both (BERT-era rerankers were routinely interpolated with BM25).
    """
    z_rerank, _ = normalize(list(scores.items()), "zscore")
    z_first, _ = normalize(first, "zscore")
    return {d: (1 - weight) * z_rerank[d] + weight * z_first[d] for d in z_rerank}


def beneath(tail: list[tuple[str, float]], floor: float) -> list[tuple[str, float]]:
    """First-stage order below the reranked head, with scores that keep that order."""
    return [(docid, floor - 1.0 - i) for i, (docid, _) in enumerate(tail)]
