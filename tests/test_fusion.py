"""Fusion arithmetic on tiny runs, with expected values worked out by hand."""

from __future__ import annotations

import pytest

from rankbench.harness.errors import ConfigError
from rankbench.harness.fusion import linear, normalize, rrf

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
