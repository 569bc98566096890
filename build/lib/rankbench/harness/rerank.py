"""Reranking shared by every reranker: depth cut, stable tail, and for scorers the score cache.

A pointwise scorer only turns (query, document) pairs into scores. This driver reranks the top
``depth`` hits of each query, fetches cached scores first and scores only the missing pairs,
and keeps every hit below the depth in its earlier order beneath the reranked ones. With an
interpolation weight the head is ordered by a weighted sum of reranker and earlier scores.
A listwise reranker gets only the heads, and must give back a permutation of each.
"""

from __future__ import annotations

from tqdm import tqdm

from rankbench.harness.components import Listwise, Pointwise
from rankbench.harness.errors import DataError
from rankbench.harness.fusion import normalize
from rankbench.harness.score_cache import ScoreCache
from rankbench.harness.types import Corpus, Query, Run


class ContractError(DataError):
    """A component gave back something its contract (harness/components.py) rules out."""


def rerank_pointwise(
    scorer: Pointwise,
    queries: list[Query],
    run: Run,
    corpus: Corpus,
    depth: int,
    cache: ScoreCache,
    weight: float | None = None,
) -> Run:
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


def rerank_listwise(reranker: Listwise, queries: list[Query], run: Run, corpus: Corpus, depth: int) -> Run:
    """The reranker reorders each query's top ``depth``; the rest keeps its order beneath."""
    heads = {q.qid: run.get(q.qid, [])[:depth] for q in queries}
    reordered = reranker.rerank(queries, heads, corpus)
    reranked: Run = {}
    for query in queries:
        head, ordered = heads[query.qid], reordered.get(query.qid, [])
        if sorted(d for d, _ in ordered) != sorted(d for d, _ in head):
            raise ContractError(
                f"{type(reranker).__name__}.rerank returned for query {query.qid} {len(ordered)} documents that "
                f"are not a permutation of the {len(head)} it was given"
            )
        floor = min((score for _, score in ordered), default=0.0)
        reranked[query.qid] = list(ordered) + beneath(run.get(query.qid, [])[depth:], floor)
    return reranked
