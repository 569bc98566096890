"""Paired significance tests on per-query values, multiple-testing corrections, bootstrap intervals.

Two systems are compared on the queries both were judged on. The randomization test flips
the sign of each per-query difference at random (under the null the two systems are
exchangeable within a query); with ``2**n`` no larger than the number of permutations it
enumerates every sign vector instead, which gives the exact p-value for less work.

A family of comparisons (every test on one measure: several systems against several
baselines, or all pairs) is corrected with Holm, Bonferroni or Benjamini–Hochberg on the
randomization p. Confidence intervals are BCa bootstrap intervals of a mean (a system's
per-query values, or the per-query deltas of a pair) from ``scipy.stats.bootstrap``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rankbench.harness.errors import RankbenchError

ALPHA = 0.05
CONFIDENCE = 0.95
# Bootstrap resamples. BCa's ends sit in the tails of the bootstrap distribution, which take
# thousands of resamples to settle: with 10,000, on 300 per-query values, the ends moved by about
# 0.001 between seeds, and one interval took 0.6 s on a loaded 2-core CPU (docs/leaderboard.md).
# Callers may pass another number (leaderboard --resamples, experiment(resamples=...)).
RESAMPLES = 10000
BOOTSTRAP_SEED = 0  # fixed, so a report's intervals are the same on every rerun
_CHUNK = 1000  # permutations drawn at once: bounds memory on large query sets


class SignificanceError(RankbenchError):
    """Per-query values needed for a test are missing or unreadable."""


@dataclass(eq=False)  # holds an array: compare by identity
class Comparison:
    """One system against one baseline on one measure, paired on shared qids.

    ``p_adjusted`` is the randomization p after ``correction`` over the comparison's family
    (``"none"``: the randomization p itself); NaN until ``correct`` has run.
    """

    paired: int
    mean_delta: float
    p_ttest: float
    p_randomization: float
    deltas: np.ndarray  # system minus baseline, per paired query
    ci_low: float = math.nan  # bootstrap interval of mean_delta; NaN when not asked for
    ci_high: float = math.nan
    p_adjusted: float = math.nan
    correction: str = "none"

    @property
    def significant(self) -> bool:
        return self.p_adjusted < ALPHA


def read_perquery(path: Path, measure: str) -> dict[str, float]:
    """qid -> value of ``measure`` from a run's perquery.csv."""
    if not path.is_file():
        raise SignificanceError(f"per-query file {path} is missing")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = [c for c in reader.fieldnames or [] if c != "qid"]
        if measure not in columns:
            raise SignificanceError(f"{path} has no column {measure!r}; it has: {', '.join(columns) or 'none'}")
        return {row["qid"]: float(row[measure]) for row in reader}


def paired_ttest(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided paired t-test p; 1.0 when every difference is zero, NaN below two pairs."""
    from scipy import stats  # ~0.7 s to import: kept off evaluate.py's path, which imports this module

    if len(a) < 2:
        return math.nan
    if not np.any(a - b):
        return 1.0  # scipy gives NaN (0/0); identical results are no evidence of a difference
    return float(stats.ttest_rel(a, b).pvalue)


def _flip_blocks(n: int, permutations: int, seed: int) -> Iterator[np.ndarray]:
    """0/1 matrices (1: flip that query's sign), at most _CHUNK rows each: all 2**n rows when exact, else sampled."""
    if 2**n <= permutations:
        for start in range(0, 2**n, _CHUNK):
            k = np.arange(start, min(start + _CHUNK, 2**n))
            yield ((k[:, None] >> np.arange(n)) & 1).astype(np.float64)  # row for k: the bits of k
        return
    rng = np.random.default_rng(seed)
    for start in range(0, permutations, _CHUNK):
        yield rng.integers(0, 2, size=(min(_CHUNK, permutations - start), n), dtype=np.int8).astype(np.float64)


def randomization_test(a: np.ndarray, b: np.ndarray, permutations: int = 10000, seed: int = 0) -> float:
    """Two-sided paired sign-flip test on the mean difference.

    Exact when ``2**n <= permutations``; otherwise Monte Carlo with the observed assignment
    counted among the permutations, p = (1 + hits) / (1 + permutations), which never
    reports 0 for a sampled test.
    """
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(d)
    if n == 0:
        return math.nan
    total = d.sum()
    observed = abs(total)
    # Sums of the same terms in another order differ in the last bits; without a tolerance a
    # tie (or a true zero difference computed as 1e-17) would be counted at random.
    tolerance = 1e-9 * np.abs(d).sum()
    hits = 0
    for flips in _flip_blocks(n, permutations, seed):
        permuted = np.abs(total - 2.0 * (flips @ d))  # flipping a subset S: sum(d) - 2 * sum(d[S])
        hits += int(np.count_nonzero(permuted >= observed - tolerance))
    return hits / 2**n if 2**n <= permutations else (1 + hits) / (1 + permutations)


def holm(pvalues: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in input order; NaN (untested) stays NaN and is not counted."""
    tested = sorted((p, i) for i, p in enumerate(pvalues) if not math.isnan(p))
    m = len(tested)
    adjusted = [math.nan] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))  # monotone: never below an earlier step
        adjusted[i] = running
    return adjusted


def _tested(pvalues: Sequence[float]) -> tuple[list[int], np.ndarray]:
    """Positions and values of the p-values that are not NaN (NaN: untested, left out of the family)."""
    positions = [i for i, p in enumerate(pvalues) if not math.isnan(p)]
    return positions, np.array([pvalues[i] for i in positions], dtype=float)


def _in_order(pvalues: Sequence[float], positions: list[int], adjusted: np.ndarray) -> list[float]:
    result = [math.nan] * len(pvalues)
    for i, p in zip(positions, adjusted, strict=True):
        result[i] = float(p)
    return result


def bonferroni(pvalues: Sequence[float]) -> list[float]:
    """Each p times the family size m, capped at 1; NaN stays NaN and is not counted in m."""
    positions, p = _tested(pvalues)
    return _in_order(pvalues, positions, np.minimum(1.0, len(p) * p))


def benjamini_hochberg(pvalues: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg (false discovery rate) adjusted p: min over j >= rank of m * p_(j) / j.

    Controls the expected share of false discoveries, not the chance of any: less strict than
    Holm when many systems are compared.
    """
    positions, p = _tested(pvalues)
    m = len(p)
    order = np.argsort(p, kind="stable")
    scaled = m * p[order] / np.arange(1, m + 1)
    stepped = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])  # monotone from the largest p down
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return _in_order(pvalues, positions, adjusted)


CORRECTIONS: dict[str, Callable[[Sequence[float]], list[float]]] = {
    "holm": holm,
    "bonferroni": bonferroni,
    "bh": benjamini_hochberg,
}


def adjust(pvalues: Sequence[float], method: str) -> list[float]:
    """``pvalues`` adjusted by ``method`` (a key of CORRECTIONS, or ``"none"`` for the p-values as given)."""
    if method != "none" and method not in CORRECTIONS:
        raise SignificanceError(f"unknown correction {method!r}; expected one of: {', '.join([*CORRECTIONS, 'none'])}")
    if bad := [p for p in pvalues if not 0 <= p <= 1 and not math.isnan(p)]:
        raise SignificanceError(f"p-values must lie in [0, 1], got {bad}")
    if method == "none":
        return [float(p) for p in pvalues]
    return CORRECTIONS[method](pvalues)


def bootstrap_ci(values: np.ndarray, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """95% BCa bootstrap interval of the mean of ``values``.

    BCa corrects the percentile interval for bias and skew, which per-query IR scores have
    (many zeros, a ceiling at 1). A constant sample has a zero-width interval (scipy's BCa
    would return NaN); fewer than two values have none (NaN).
    """
    from scipy import stats

    values = np.asarray(values, dtype=float)
    if resamples < 1:
        raise SignificanceError(f"bootstrap resamples must be at least 1, got {resamples}")
    if len(values) < 2:
        return math.nan, math.nan
    if np.ptp(values) == 0:
        return float(values[0]), float(values[0])
    result = stats.bootstrap(
        (values,),
        np.mean,
        n_resamples=resamples,
        confidence_level=CONFIDENCE,
        method="BCa",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def compare(
    system: dict[str, float],
    baseline: dict[str, float],
    permutations: int = 10000,
    seed: int = 0,
    resamples: int | None = None,
) -> Comparison:
    """Both tests on the qids the two runs share (a query judged in one only is left out); with
    ``resamples``, also the bootstrap interval of the mean delta."""
    qids = sorted(system.keys() & baseline.keys())
    a = np.array([system[q] for q in qids], dtype=float)
    b = np.array([baseline[q] for q in qids], dtype=float)
    deltas = a - b
    low, high = bootstrap_ci(deltas, resamples, seed) if resamples is not None else (math.nan, math.nan)
    return Comparison(
        paired=len(qids),
        mean_delta=float(deltas.mean()) if qids else math.nan,
        p_ttest=paired_ttest(a, b),
        p_randomization=randomization_test(a, b, permutations, seed),
        deltas=deltas,
        ci_low=low,
        ci_high=high,
    )


def correct(comparisons: Sequence[Comparison], method: str = "holm") -> None:
    """``method`` over one family of comparisons, on the randomization p."""
    for comparison, p in zip(comparisons, adjust([c.p_randomization for c in comparisons], method), strict=True):
        comparison.p_adjusted = p
        comparison.correction = method


def pairs(names: Sequence[str], baselines: Sequence[str] = (), all_pairs: bool = False) -> list[tuple[str, str]]:
    """(system, baseline) pairs to test: every other name against each baseline, or, with
    ``all_pairs``, each name against every name before it (each unordered pair once)."""
    if all_pairs:
        return [(names[j], names[i]) for i in range(len(names)) for j in range(i + 1, len(names))]
    for base in baselines:
        if base not in names:
            raise SignificanceError(f"baseline {base!r} is not among the systems {list(names)}")
    return [(name, base) for base in dict.fromkeys(baselines) for name in names if name != base]


Values = dict[str, dict[str, dict[str, float]]]  # system -> measure -> qid -> value


@dataclass(frozen=True)
class Options:
    """How a family of comparisons is tested: the correction, the randomization test's permutations and
    seed (also the bootstrap's), and bootstrap resamples for delta intervals (None: no intervals)."""

    correction: str = "holm"
    permutations: int = 10000
    seed: int = 0
    resamples: int | None = None


def compare_all(
    values: Values, tested: Sequence[tuple[str, str]], measures: Sequence[str], options: Options = Options()
) -> dict[tuple[str, str, str], Comparison]:
    """(system, baseline, measure) -> comparison, for every pair in ``tested`` on every measure.

    The family corrected together is every comparison on one measure: adding a baseline adds
    tests, and the correction must pay for them, while a second measure asks another question.
    """
    adjust([], options.correction)  # an unknown name fails before any test runs
    results: dict[tuple[str, str, str], Comparison] = {}
    for measure in measures:
        family = {
            (system, base, measure): compare(
                values[system][measure], values[base][measure], options.permutations, options.seed, options.resamples
            )
            for system, base in tested
        }
        correct(list(family.values()), options.correction)
        results |= family
    return results
