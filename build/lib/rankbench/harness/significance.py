"""Paired significance tests on per-query values, and Holm–Bonferroni correction.

Two systems are compared on the queries both were judged on. The randomization test flips
the sign of each per-query difference at random (under the null the two systems are
exchangeable within a query); with ``2**n`` no larger than the number of permutations it
enumerates every sign vector instead, which gives the exact p-value for less work.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rankbench.harness.errors import RankbenchError

ALPHA = 0.05
_CHUNK = 1000  # permutations drawn at once: bounds memory on large query sets


class SignificanceError(RankbenchError):
    """Per-query values needed for a test are missing or unreadable."""


@dataclass(eq=False)  # holds an array: compare by identity
class Comparison:
    """One system against the baseline on one measure, paired on shared qids."""

    paired: int
    mean_delta: float
    p_ttest: float
    p_randomization: float
    deltas: np.ndarray  # system minus baseline, per paired query
    p_holm: float = math.nan

    @property
    def significant(self) -> bool:
        return self.p_holm < ALPHA


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


def compare(
    system: dict[str, float], baseline: dict[str, float], permutations: int = 10000, seed: int = 0
) -> Comparison:
    """Both tests on the qids the two runs share (a query judged in one only is left out)."""
    qids = sorted(system.keys() & baseline.keys())
    a = np.array([system[q] for q in qids], dtype=float)
    b = np.array([baseline[q] for q in qids], dtype=float)
    deltas = a - b
    return Comparison(
        paired=len(qids),
        mean_delta=float(deltas.mean()) if qids else math.nan,
        p_ttest=paired_ttest(a, b),
        p_randomization=randomization_test(a, b, permutations, seed),
        deltas=deltas,
    )


def correct(comparisons: list[Comparison]) -> None:
    """Holm over one family (every system compared with the same baseline), on the randomization p."""
    for comparison, p in zip(comparisons, holm([c.p_randomization for c in comparisons]), strict=True):
        comparison.p_holm = p
