"""Interpolating reranker scores with the first stage's (pure arithmetic on z-scores)."""

import pytest

from rankbench.harness.rerank import interpolated

FIRST = [("a", 30.0), ("b", 20.0), ("c", 10.0)]  # first stage: a > b > c
RERANKER = {"a": -1.0, "b": 0.0, "c": 4.0}  # reranker: c > b > a


def order(scores: dict[str, float]) -> list[str]:
    return sorted(scores, key=lambda d: -scores[d])


def test_the_ends_of_the_weight_range_give_each_ranking_alone():
    assert order(interpolated(RERANKER, FIRST, 0.0)) == ["c", "b", "a"]
    assert order(interpolated(RERANKER, FIRST, 1.0)) == ["a", "b", "c"]


def test_a_middle_weight_mixes_z_scores():
    fused = interpolated(RERANKER, FIRST, 0.5)
    # z(first) = (1.2247, 0, -1.2247); z(reranker) = (-0.9258, -0.4629, 1.3887)
    assert fused["a"] == pytest.approx(0.5 * 1.2247449 + 0.5 * -0.9258201, abs=1e-6)
    assert order(fused) == ["a", "c", "b"]  # a 0.149, c 0.082, b -0.231
