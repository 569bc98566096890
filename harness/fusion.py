"""Fusing ranked lists of several first stages into one: reciprocal rank or score combination.

Both treat a document missing from one input as that input's worst: no RRF credit, and the
lowest normalised score. Weights are per input name; unnamed inputs weigh 1.

tests/test_fusion.py checks both against ranx.fuse (rrf; wsum after min-max or zmuv), which agrees to
1e-9 except by definition in two places: ranx gives a document missing from an input 0.0 after z-score
normalisation (the input's mean, which can lift it above documents the input did return; here the
input's lowest z-score), and min-max normalises a list of equal scores to 0.0 (here 1.0: they are the
list's best).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from rankbench.harness.errors import ConfigError
from rankbench.harness.types import Run

NORMALIZATIONS = ("minmax", "zscore")


def _sorted(scores: dict[str, float], hits: int) -> list[tuple[str, float]]:
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:hits]


def rrf(runs: Mapping[str, Run], hits: int, k: float = 60.0, weights: Mapping[str, float] | None = None) -> Run:
    """Reciprocal rank fusion: sum of weight / (k + rank), ranks from 1 (Cormack et al., 2009)."""
    weights = weights or {}
    fused: Run = {}
    for qid in {q for run in runs.values() for q in run}:
        scores: dict[str, float] = {}
        for name, run in runs.items():
            for rank, (docid, _) in enumerate(run.get(qid, []), start=1):
                scores[docid] = scores.get(docid, 0.0) + weights.get(name, 1.0) / (k + rank)
        fused[qid] = _sorted(scores, hits)
    return fused


def normalize(hits: list[tuple[str, float]], method: str) -> tuple[dict[str, float], float]:
    """Normalised scores of one ranked list, and the value a document missing from it gets."""
    if method not in NORMALIZATIONS:
        raise ConfigError(f"retriever.normalization must be one of {', '.join(NORMALIZATIONS)}, got {method!r}")
    if not hits:
        return {}, 0.0
    values = [s for _, s in hits]
    if method == "minmax":
        low, span = min(values), max(values) - min(values)
        return {d: (s - low) / span if span else 1.0 for d, s in hits}, 0.0
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    z = {d: (s - mean) / std if std else 0.0 for d, s in hits}
    return z, min(z.values())


def linear(
    runs: Mapping[str, Run], hits: int, method: str = "minmax", weights: Mapping[str, float] | None = None
) -> Run:
    """Weighted sum of per-query normalised scores."""
    weights = weights or {}
    fused: Run = {}
    for qid in {q for run in runs.values() for q in run}:
        parts = {name: normalize(run.get(qid, []), method) for name, run in runs.items()}
        docids = {d for scores, _ in parts.values() for d in scores}
        scores = {
            d: sum(weights.get(name, 1.0) * scores.get(d, floor) for name, (scores, floor) in parts.items())
            for d in docids
        }
        fused[qid] = _sorted(scores, hits)
    return fused
