"""A pointwise reranker in one small class: the worked example of docs/adding-a-component.md.

It scores a (query, document) pair by the share of the query's distinct terms that occur in the
document's title and text. Nothing to train, so it doubles as a sanity baseline for rerankers.
"""

from __future__ import annotations

import re
from typing import ClassVar

from rankbench.harness.components import Pointwise
from rankbench.harness.types import Doc, Query

WORD = re.compile(r"\w+")


def terms(text: str, min_length: int) -> set[str]:
    return {t for t in WORD.findall(text.lower()) if len(t) >= min_length}


class TermOverlap(Pointwise):
    """Share of query terms found in the document; ``min_length`` drops short terms (``a``, ``of``)."""

    RUNTIME_KEYS: ClassVar[frozenset[str]] = frozenset({"progress"})  # never changes a score

    def __init__(self, name: str = "term_overlap", min_length: int = 3, progress: bool = False):
        self.name, self.min_length, self.progress = name, min_length, progress
        self.pairs_scored = 0

    def score(self, pairs: list[tuple[Query, Doc]]) -> list[float]:
        self.pairs_scored += len(pairs)
        scores = []
        for query, doc in pairs:
            wanted = terms(query.text, self.min_length)
            found = wanted & terms(f"{doc.title} {doc.text}", self.min_length)
            scores.append(len(found) / len(wanted) if wanted else 0.0)
        if self.progress:
            print(f"{self.name}: {self.pairs_scored} pairs scored")
        return scores

    def stats(self) -> dict[str, int]:
        return {"pairs_scored": self.pairs_scored}
