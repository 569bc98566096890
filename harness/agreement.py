"""How far an LLM judge agrees with human assessors: Cohen's κ, a confusion matrix, Kendall τ.

κ is computed here (a few lines, no scikit-learn dependency) and cross-checked in the tests
against ``sklearn.metrics.cohen_kappa_score`` where scikit-learn is installed, and against a
hand-worked example everywhere. τ compares the order of systems two sets of qrels give; it is
``scipy.stats.kendalltau`` (τ-b, so tied scores are handled), not reimplemented.
"""

from __future__ import annotations

from collections.abc import Sequence

from scipy.stats import kendalltau


def confusion_matrix(human: Sequence[int], llm: Sequence[int], labels: Sequence[int]) -> list[list[int]]:
    """Counts with human grades as rows and LLM grades as columns, both in ``labels`` order."""
    if len(human) != len(llm):
        raise ValueError(f"{len(human)} human grades against {len(llm)} LLM grades")
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for h, g in zip(human, llm, strict=True):
        matrix[index[h]][index[g]] += 1
    return matrix


def cohen_kappa(human: Sequence[int], llm: Sequence[int], labels: Sequence[int]) -> float | None:
    """Unweighted Cohen's κ = (p_o - p_e) / (1 - p_e); None when undefined (no pairs, or p_e = 1,
    i.e. both raters used one and the same grade throughout, so chance explains everything)."""
    matrix = confusion_matrix(human, llm, labels)
    n = sum(map(sum, matrix))
    if n == 0:
        return None
    observed = sum(matrix[i][i] for i in range(len(labels))) / n
    rows = [sum(row) / n for row in matrix]
    cols = [sum(row[j] for row in matrix) / n for j in range(len(labels))]
    expected = sum(r * c for r, c in zip(rows, cols, strict=True))
    if expected == 1:
        return None
    return (observed - expected) / (1 - expected)


def binarised(grades: Sequence[int], threshold: int) -> list[int]:
    """1 where a grade reaches ``threshold`` (relevant), else 0."""
    return [int(g >= threshold) for g in grades]


def kendall_tau(first: Sequence[float], second: Sequence[float]) -> float | None:
    """τ-b between two scorings of the same systems; None for fewer than two systems or a constant side."""
    if len(first) != len(second):
        raise ValueError(f"{len(first)} systems against {len(second)}")
    if len(first) < 2 or len(set(first)) < 2 or len(set(second)) < 2:
        return None
    return float(kendalltau(first, second).statistic)
