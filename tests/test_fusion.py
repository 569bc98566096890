"""Fusion arithmetic on tiny runs, with expected values worked out by hand, then against ranx."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rankbench.harness.errors import ConfigError
from rankbench.harness.fusion import linear, normalize, rrf
from rankbench.harness.types import Run

A = {"q": [("x", 10.0), ("y", 8.0), ("z", 6.0)]}
B = {"q": [("z", 0.9), ("x", 0.5)]}


def test_rrf_sums_reciprocal_ranks():
    fused = rrf({"a": A, "b": B}, hits=10, k=60)
    scores = dict(fused["q"])
    assert scores["x"] == pytest.approx(1 / 61 + 1 / 62)
    assert scores["z"] == pytest.approx(1 / 63 + 1 / 61)
    assert scores["y"] == pytest.approx(1 / 62)  # absent from b: no credit there
    assert [d for d, _ in fused["q"]] == ["x", "z", "y"]


def test_rrf_weights_and_hits():
    fused = rrf({"a": A, "b": B}, hits=1, k=60, weights={"a": 0.0})
    assert fused["q"] == [("z", pytest.approx(1 / 61))]


def test_minmax_and_zscore():
    scores, floor = normalize(A["q"], "minmax")
    assert scores == {"x": 1.0, "y": 0.5, "z": 0.0} and floor == 0.0
    z, zfloor = normalize(A["q"], "zscore")
    std = (8 / 3) ** 0.5  # population std of 10, 8, 6
    assert z["x"] == pytest.approx(2 / std) and zfloor == pytest.approx(-2 / std)
    assert normalize([("only", 3.0)], "minmax")[0] == {"only": 1.0}


def test_linear_fusion():
    fused = dict(linear({"a": A, "b": B}, hits=10, method="minmax", weights={"b": 2.0})["q"])
    # a: x=1, y=0.5, z=0; b: z=1, x=0 (min), y missing -> 0
    assert fused == {"x": pytest.approx(1.0), "y": pytest.approx(0.5), "z": pytest.approx(2.0)}


def test_unknown_normalization():
    with pytest.raises(ConfigError, match=r"retriever\.normalization must be one of minmax, zscore"):
        normalize(A["q"], "softmax")


# --- against ranx (ranx.fuse), on hand-written runs and on BM25- and dense-like score distributions ---
#
# Two definitional differences, both tested below rather than hidden:
# - z-score: a document missing from one input gets ranx's 0.0 there, i.e. that input's *mean*; ours gets the
#   input's lowest z-score (absent means "ranked below everything it returned"). So the two agree exactly
#   when every input returns the same documents, and otherwise differ by weight x floor per missing input.
# - min-max on a list whose scores are all equal (one hit, or ties throughout): ranx divides by
#   max(span, 1e-9) and gives 0.0, ours gives 1.0 (the list's documents are its best). Elsewhere they agree;
#   a missing document gets 0.0 in both (the minimum).
# ranx has no weighted RRF: the weighted case is checked as ranx's per-input RRF scores summed by ranx's wsum.

ranx = pytest.importorskip("ranx")


def to_ranx(run: Run) -> ranx.Run:
    return ranx.Run({qid: dict(hits) for qid, hits in run.items()})


def ranx_scores(run: ranx.Run) -> dict[str, dict[str, float]]:
    return {qid: dict(hits) for qid, hits in run.to_dict().items()}


def assert_same_fusion(ours: Run, theirs: ranx.Run) -> None:
    """Same documents with the same scores (1e-9), and our order is ranx's up to exact ties."""
    expected = ranx_scores(theirs)
    assert set(ours) == set(expected)
    for qid, hits in ours.items():
        assert dict(hits) == pytest.approx(expected[qid], rel=0, abs=1e-9)
        ranx_by_our_order = [expected[qid][d] for d, _ in hits]
        assert all(a >= b - 1e-12 for a, b in itertools.pairwise(ranx_by_our_order)), qid


def bm25_and_dense_like(seed: int = 7, queries: int = 25, depth: int = 100) -> tuple[Run, Run]:
    """BM25-like scores (unbounded, a long right tail) and dense-like cosines (a narrow band), each query's two
    lists sharing about half their documents, as BM25 and MiniLM do on SciFact; continuous, hence tie-free."""
    rng = np.random.default_rng(seed)
    bm25: Run = {}
    dense: Run = {}
    for q in range(queries):
        pool = [f"d{i}" for i in rng.choice(5000, size=2 * depth, replace=False)]
        lexical = pool[:depth]
        semantic = [*rng.choice(lexical, size=depth // 2, replace=False), *pool[depth : depth + depth // 2]]
        bm25[f"q{q}"] = list(zip(lexical, sorted(5 + rng.gamma(2.0, 3.0, depth), reverse=True), strict=True))
        dense[f"q{q}"] = list(zip(semantic, sorted(rng.normal(0.45, 0.08, depth), reverse=True), strict=True))
    return bm25, dense


HAND = {"a": {"q1": A["q"], "q2": [("u", 3.0), ("v", 1.0)]}, "b": {"q1": B["q"], "q2": [("v", 0.7), ("w", 0.2)]}}
LIKE = dict(zip(("bm25", "dense"), bm25_and_dense_like(), strict=True))


@pytest.mark.parametrize("runs", [HAND, LIKE], ids=["hand", "bm25-dense-like"])
@pytest.mark.parametrize("k", [60, 10])
def test_rrf_equals_ranx(runs: dict[str, Run], k: int):
    ours = rrf(runs, hits=10_000, k=k)
    assert_same_fusion(ours, ranx.fuse([to_ranx(r) for r in runs.values()], norm=None, method="rrf", params={"k": k}))


@pytest.mark.parametrize("runs", [HAND, LIKE], ids=["hand", "bm25-dense-like"])
def test_weighted_rrf_equals_ranx_per_input_rrf_summed_by_wsum(runs: dict[str, Run]):
    weights = dict(zip(runs, (0.3, 1.7), strict=True))
    per_input = [ranx.fusion.rrf([to_ranx(r)], k=60) for r in runs.values()]
    theirs = ranx.fuse(per_input, norm=None, method="wsum", params={"weights": list(weights.values())})
    assert_same_fusion(rrf(runs, hits=10_000, k=60, weights=weights), theirs)


@pytest.mark.parametrize("runs", [HAND, LIKE], ids=["hand", "bm25-dense-like"])
@pytest.mark.parametrize("weights", [(1.0, 1.0), (0.25, 2.0)])
def test_minmax_weighted_sum_equals_ranx(runs: dict[str, Run], weights: tuple[float, float]):
    ours = linear(runs, hits=10_000, method="minmax", weights=dict(zip(runs, weights, strict=True)))
    theirs = ranx.fuse([to_ranx(r) for r in runs.values()], norm="min-max", method="wsum", params={"weights": weights})
    assert_same_fusion(ours, theirs)


def same_documents(runs: dict[str, Run]) -> dict[str, Run]:
    """Each input reordered over one shared document set per query (the first input's): nothing is missing."""
    first = next(iter(runs.values()))
    shared: dict[str, Run] = {}
    for i, (name, run) in enumerate(runs.items()):
        shared[name] = {}
        for qid, hits in first.items():
            scores = sorted((s for _, s in run[qid]), reverse=True)[: len(hits)]
            docids = [d for d, _ in hits][:: -1 if i % 2 else 1]
            shared[name][qid] = list(zip(docids, scores, strict=True))
    return shared


@pytest.mark.parametrize("weights", [(1.0, 1.0), (0.25, 2.0)])
def test_zscore_weighted_sum_equals_ranx_when_no_document_is_missing(weights: tuple[float, float]):
    runs = same_documents(LIKE)
    ours = linear(runs, hits=10_000, method="zscore", weights=dict(zip(runs, weights, strict=True)))
    theirs = ranx.fuse([to_ranx(r) for r in runs.values()], norm="zmuv", method="wsum", params={"weights": weights})
    assert_same_fusion(ours, theirs)


def test_zscore_missing_document_gets_the_inputs_lowest_not_ranxs_mean():
    """Where documents are missing the two differ by exactly weight x (that input's lowest z-score, ranx's)."""
    weights = {"bm25": 0.5, "dense": 2.0}
    ours = linear(LIKE, hits=10_000, method="zscore", weights=weights)
    theirs = ranx_scores(
        ranx.fuse([to_ranx(r) for r in LIKE.values()], norm="zmuv", method="wsum", params={"weights": [0.5, 2.0]})
    )
    normalised = {name: ranx_scores(ranx.normalization.zmuv_norm(to_ranx(run))) for name, run in LIKE.items()}
    differed = 0
    for qid, hits in ours.items():
        for docid, score in hits:
            shift = sum(
                weights[name] * min(normalised[name][qid].values())
                for name, run in LIKE.items()
                if docid not in dict(run[qid])
            )
            assert score == pytest.approx(theirs[qid][docid] + shift, rel=0, abs=1e-9)
            differed += shift != 0
    assert differed > 0


def test_minmax_of_a_constant_list_is_one_here_and_zero_in_ranx():
    runs = {"a": {"q": [("x", 4.0)]}, "b": {"q": [("x", 0.9), ("y", 0.1)]}}
    ours = dict(linear(runs, hits=10, method="minmax")["q"])
    theirs = ranx_scores(
        ranx.fuse([to_ranx(r) for r in runs.values()], norm="min-max", method="wsum", params={"weights": [1.0, 1.0]})
    )["q"]
    assert ours == {"x": pytest.approx(2.0), "y": 0.0}  # x: 1 (a's only document) + 1 (b's best)
    assert theirs == {"x": pytest.approx(1.0), "y": 0.0}  # ranx: a's only document normalises to 0
