"""significance.py against scipy.stats and statsmodels on the same inputs, to 1e-9."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from rankbench.harness import significance
from rankbench.harness.significance import SignificanceError

TOL = 1e-9


def paired(seed: int, n: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-query scores of two systems, rounded as perquery.csv saves them, so ties and zero deltas occur."""
    rng = np.random.default_rng(seed)
    a = np.round(rng.uniform(0, 1, n), 2)
    b = np.round(np.clip(a - shift + rng.normal(0, 0.15, n), 0, 1), 2)
    return a, b


@pytest.mark.parametrize("seed, n", [(0, 8), (1, 30), (2, 300)])
def test_ttest_equals_scipy(seed: int, n: int):
    a, b = paired(seed, n, 0.05)
    assert significance.paired_ttest(a, b) == pytest.approx(stats.ttest_rel(a, b).pvalue, abs=TOL)


@pytest.mark.parametrize("seed, n", [(3, 6), (4, 10), (5, 13)])
def test_randomization_equals_scipy_permutation_test_exact(seed: int, n: int):
    a, b = paired(seed, n, 0.1)
    expected = stats.permutation_test(
        (a, b),
        lambda x, y, axis: np.mean(x - y, axis=axis),
        permutation_type="samples",  # swaps within a pair: the paired test
        n_resamples=np.inf,  # every one of the 2**n assignments
        alternative="two-sided",
        vectorized=True,
    ).pvalue
    assert 2**n <= 10000  # the hand-written test enumerates too
    assert significance.randomization_test(a, b) == pytest.approx(expected, abs=TOL)


P_FAMILIES = [
    [0.01, 0.04, 0.03, 0.005],
    [0.2, 0.001, 0.049, 0.049, 0.8, 0.0123, 1.0],  # ties and a p of 1
    list(np.random.default_rng(6).uniform(0, 0.2, 25)),
    [0.3],
]


@pytest.mark.parametrize("pvalues", P_FAMILIES)
@pytest.mark.parametrize("ours, theirs", [("holm", "holm"), ("bonferroni", "bonferroni"), ("bh", "fdr_bh")])
def test_corrections_equal_statsmodels(pvalues: list[float], ours: str, theirs: str):
    expected = multipletests(pvalues, method=theirs)[1]
    assert significance.adjust(pvalues, ours) == pytest.approx(list(expected), abs=TOL)
    assert significance.CORRECTIONS[ours](pvalues) == pytest.approx(list(expected), abs=TOL)


@pytest.mark.parametrize("method, theirs", [("holm", "holm"), ("bonferroni", "bonferroni"), ("bh", "fdr_bh")])
def test_untested_nan_is_left_out_of_the_family(method: str, theirs: str):
    adjusted = significance.adjust([0.01, math.nan, 0.04, 0.03], method)
    assert math.isnan(adjusted[1])
    expected = multipletests([0.01, 0.04, 0.03], method=theirs)[1]
    assert [adjusted[0], adjusted[2], adjusted[3]] == pytest.approx(list(expected), abs=TOL)


def test_bh_hand_worked():
    # m = 4, ascending 0.005, 0.01, 0.03, 0.04 -> 4*p/rank = 0.02, 0.02, 0.04, 0.04; already monotone.
    assert significance.benjamini_hochberg([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    # 0.01*2/1 = 0.02 but 0.011*2/2 = 0.011: the smaller later step pulls the first down.
    assert significance.benjamini_hochberg([0.01, 0.011]) == pytest.approx([0.011, 0.011])


def test_none_and_empty_and_bad_corrections():
    assert significance.adjust([0.01, 0.2], "none") == [0.01, 0.2]
    assert significance.adjust([], "bh") == []
    with pytest.raises(SignificanceError, match="unknown correction 'sidak'; expected one of: holm, bonferroni, bh"):
        significance.adjust([0.1], "sidak")
    with pytest.raises(SignificanceError, match=r"p-values must lie in \[0, 1\]"):
        significance.adjust([0.1, 1.5], "holm")


def test_bootstrap_equals_scipy_and_is_seeded():
    a, _ = paired(7, 60)
    low, high = significance.bootstrap_ci(a, resamples=2000, seed=11)
    direct = stats.bootstrap(
        (a,), np.mean, n_resamples=2000, confidence_level=0.95, method="BCa", rng=np.random.default_rng(11)
    ).confidence_interval
    assert (low, high) == pytest.approx((direct.low, direct.high), abs=TOL)
    assert low < a.mean() < high
    assert significance.bootstrap_ci(a, resamples=2000, seed=11) == (low, high)  # reproducible
    assert significance.bootstrap_ci(a, resamples=2000, seed=12) != (low, high)


def test_bootstrap_default_resamples_and_degenerate_samples():
    assert significance.RESAMPLES == 10000
    a, _ = paired(8, 40)
    direct = stats.bootstrap((a,), np.mean, n_resamples=10000, method="BCa", rng=np.random.default_rng(0))
    ci = direct.confidence_interval
    assert significance.bootstrap_ci(a) == pytest.approx((ci.low, ci.high), abs=TOL)
    assert significance.bootstrap_ci(np.full(5, 0.25)) == (0.25, 0.25)  # scipy's BCa gives NaN here
    assert all(math.isnan(v) for v in significance.bootstrap_ci(np.array([0.5])))
    with pytest.raises(SignificanceError, match="resamples must be at least 1, got 0"):
        significance.bootstrap_ci(a, resamples=0)


def test_compare_interval_is_the_delta_interval():
    a, b = paired(9, 50, 0.1)
    system = {f"q{i}": v for i, v in enumerate(a)}
    base = {f"q{i}": v for i, v in enumerate(b)}
    result = significance.compare(system, base, resamples=1000, seed=4)
    qids = sorted(system)  # compare pairs the queries in qid order: q0, q1, q10, ...
    deltas = np.array([system[q] - base[q] for q in qids])
    assert (result.ci_low, result.ci_high) == significance.bootstrap_ci(deltas, 1000, 4)
    assert math.isnan(significance.compare(system, base).ci_low)  # not asked for


def values_of(seed: int, shift: float) -> dict[str, dict[str, float]]:
    a, b = paired(seed, 30, shift)
    return {
        "nDCG@10": {f"q{i}": float(v) for i, v in enumerate(a)},
        "R@100": {f"q{i}": float(v) for i, v in enumerate(b)},
    }


def test_pairs_for_baselines_and_all_pairs():
    names = ["bm25", "dense", "hybrid"]
    assert significance.pairs(names, ["bm25"]) == [("dense", "bm25"), ("hybrid", "bm25")]
    assert significance.pairs(names, ["bm25", "dense"]) == [
        ("dense", "bm25"),
        ("hybrid", "bm25"),
        ("bm25", "dense"),
        ("hybrid", "dense"),
    ]
    assert significance.pairs(names, all_pairs=True) == [("dense", "bm25"), ("hybrid", "bm25"), ("hybrid", "dense")]
    with pytest.raises(SignificanceError, match="baseline 'splade' is not among the systems"):
        significance.pairs(names, ["splade"])


def test_compare_all_corrects_each_measure_as_one_family():
    values = {"a": values_of(1, 0.0), "b": values_of(2, 0.1), "c": values_of(3, 0.05)}
    tested = significance.pairs(list(values), all_pairs=True)
    results = significance.compare_all(
        values, tested, ["nDCG@10", "R@100"], significance.Options("bh", permutations=2000)
    )
    assert len(results) == 6
    for measure in ("nDCG@10", "R@100"):
        family = [results[(s, b, measure)] for s, b in tested]
        expected = multipletests([c.p_randomization for c in family], method="fdr_bh")[1]
        assert [c.p_adjusted for c in family] == pytest.approx(list(expected), abs=TOL)
        assert all(c.correction == "bh" for c in family)
        one = significance.compare(values["b"][measure], values["a"][measure], 2000, 0)
        assert results[("b", "a", measure)].p_randomization == one.p_randomization
    with pytest.raises(SignificanceError, match="unknown correction 'fdr'"):
        significance.compare_all(values, tested, ["nDCG@10"], significance.Options("fdr"))


def test_significant_follows_the_adjusted_p():
    values = {"a": values_of(1, 0.0), "b": values_of(1, 0.0)}
    values["b"]["nDCG@10"] = {q: min(1.0, v + 0.2) for q, v in values["a"]["nDCG@10"].items()}
    result = significance.compare_all(values, [("b", "a")], ["nDCG@10"], significance.Options("none"))[
        ("b", "a", "nDCG@10")
    ]
    assert result.p_adjusted == result.p_randomization and result.significant
