"""rankbench.experiment's statistics columns, on per-query values given directly (pure logic: no
system runs here; tests/test_dense_scifact.py runs real systems through the same code)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

import rankbench as rb
from rankbench import compare
from rankbench.harness import significance
from rankbench.harness.errors import ConfigError

QIDS = [f"q{i}" for i in range(40)]


def scores(seed: int, shift: float) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(seed)
    ndcg = np.clip(rng.uniform(0.2, 0.8, len(QIDS)) + shift, 0, 1)
    recall = np.clip(rng.uniform(0.4, 1.0, len(QIDS)) + shift / 2, 0, 1)
    return {q: {"nDCG@10": float(n), "R@100": float(r)} for q, n, r in zip(QIDS, ndcg, recall, strict=True)}


VALUES = {"bm25": scores(1, 0.0), "dense": scores(2, 0.02), "hybrid": scores(3, 0.15)}


def frame_of(values: dict) -> pd.DataFrame:
    means = {
        label: {m: np.mean([v[m] for v in pq.values()]) for m in ("nDCG@10", "R@100")} for label, pq in values.items()
    }
    frame = pd.DataFrame(means).T
    frame.index.name = "name"
    return frame


def test_one_baseline_keeps_the_plain_column_names():
    options = significance.Options("holm", 2000, 0, None)
    tested = compare._pairs(0, False, list(VALUES))
    frame = compare._with_tests(frame_of(VALUES), VALUES, tested, options, suffix=False)
    assert list(frame.index) == ["bm25", "dense", "hybrid"] and frame.index.name == "name"
    for column in ("nDCG@10 delta", "nDCG@10 +", "nDCG@10 p_ttest", "nDCG@10 p_rand", "nDCG@10 p_holm"):
        assert math.isnan(frame.loc["bm25", column]) and not math.isnan(frame.loc["hybrid", column])
    family = [frame.loc[s, "nDCG@10 p_rand"] for s in ("dense", "hybrid")]
    assert [frame.loc[s, "nDCG@10 p_holm"] for s in ("dense", "hybrid")] == pytest.approx(
        list(multipletests(family, method="holm")[1]), abs=1e-12
    )


def test_several_baselines_name_each_and_share_one_family_per_measure():
    options = significance.Options("bh", 2000, 0, 1000)
    tested = compare._pairs(["bm25", 1], False, list(VALUES))
    assert tested == [("dense", "bm25"), ("hybrid", "bm25"), ("bm25", "dense"), ("hybrid", "dense")]
    frame = compare._with_tests(frame_of(VALUES), VALUES, tested, options, suffix=True)
    assert "nDCG@10 delta vs bm25" in frame and "R@100 p_bh vs dense" in frame and "nDCG@10 p_holm" not in frame
    expected_delta = np.mean([VALUES["hybrid"][q]["nDCG@10"] - VALUES["dense"][q]["nDCG@10"] for q in QIDS])
    assert frame.loc["hybrid", "nDCG@10 delta vs dense"] == pytest.approx(expected_delta, abs=1e-12)
    raw = [frame.loc[s, f"R@100 p_rand vs {b}"] for s, b in tested]
    adjusted = [frame.loc[s, f"R@100 p_bh vs {b}"] for s, b in tested]
    assert adjusted == pytest.approx(list(multipletests(raw, method="fdr_bh")[1]), abs=1e-12)
    low, high = (
        frame.loc["hybrid", "nDCG@10 delta ci_low vs bm25"],
        frame.loc["hybrid", "nDCG@10 delta ci_high vs bm25"],
    )
    direct = significance.compare(
        {q: v["nDCG@10"] for q, v in VALUES["hybrid"].items()},
        {q: v["nDCG@10"] for q, v in VALUES["bm25"].items()},
        2000,
        0,
        1000,
    )
    assert (low, high) == (direct.ci_low, direct.ci_high) and 0 < low < high


def test_all_pairs_and_system_intervals():
    options = significance.Options("none", 2000, 5, 1000)
    tested = compare._pairs(None, True, list(VALUES))
    assert tested == [("dense", "bm25"), ("hybrid", "bm25"), ("hybrid", "dense")]
    frame = compare._with_intervals(frame_of(VALUES), VALUES, options)
    frame = compare._with_tests(frame, VALUES, tested, options, suffix=True)
    assert not any("p_none" in c or "p_holm" in c for c in frame.columns)
    assert "nDCG@10 ci_low vs bm25" not in frame  # a system's own interval is not a test's column
    values = np.array([VALUES["dense"][q]["R@100"] for q in QIDS])
    assert (frame.loc["dense", "R@100 ci_low"], frame.loc["dense", "R@100 ci_high"]) == significance.bootstrap_ci(
        values, 1000, 5
    )


def test_bad_statistics_arguments_fail_before_anything_runs():
    with pytest.raises(ConfigError, match="pass it or baseline, not both"):
        rb.experiment([rb.BM25(), rb.Dense()], "scifact", baseline=0, all_pairs=True)
    with pytest.raises(ConfigError, match="resamples must be at least 1, got 0"):
        rb.experiment([rb.BM25(), rb.Dense()], "scifact", ci=True, resamples=0)
    with pytest.raises(ConfigError, match=r"baseline=5 is not an index into the 2 systems"):
        rb.experiment([rb.BM25(), rb.Dense()], "scifact", baseline=[0, 5])
    with pytest.raises(ConfigError, match="baseline='splade' is not among the systems' names"):
        rb.experiment([rb.BM25(), rb.Dense()], "scifact", baseline=["splade"])
