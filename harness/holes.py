"""Holes: the share of a run's top 10 that the qrels never judged (BEIR's Hole@10 = 1 - Judged@10).

Qrels are built by pooling the systems of their time, so a dense or LLM system that surfaces other
documents meets unjudged ones, which every measure counts as non-relevant. A system with many holes
may be better than its nDCG@10 says; its score is a lower bound, and comparisons with the pooled
systems favour them.
"""

from __future__ import annotations

MEASURE = "Judged@10"
NOTE = (
    "Holes@10 = 1 − Judged@10: the share of each system's top 10 (averaged over queries) that the qrels "
    "do not judge. Measures count an unjudged document as non-relevant, so a system with many holes may "
    "be underrated against the systems the judgments were pooled from."
)


def holes(rows: list[dict[str, str]], labels: dict[int, str]) -> tuple[list[str], list[list[str]]]:
    """Header and cells, one line per row that has Judged@10 (``labels``: id(row) -> display name);
    an empty body when no row has it (runs made before it was a default measure)."""
    header = ["dataset", "system", MEASURE, "holes@10"]
    body = []
    for row in rows:
        if (judged := row.get(MEASURE)) not in (None, ""):
            share = float(judged)
            body.append([row["dataset"], labels.get(id(row), row["system"]), f"{share:.4f}", f"{1 - share:.4f}"])
    return header, body
