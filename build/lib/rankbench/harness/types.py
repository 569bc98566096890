"""Small typed values that carry data between pipeline stages."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Doc:
    docid: str
    title: str
    text: str


@dataclass(frozen=True, slots=True)
class Query:
    qid: str
    text: str


# qid -> docid -> graded relevance
Qrels = dict[str, dict[str, int]]

# qid -> [(docid, score), ...] sorted by descending score
Run = dict[str, list[tuple[str, float]]]


class Corpus(Protocol):
    """A re-iterable document collection with a content fingerprint for cache keys."""

    fingerprint: str
    source: str

    def __iter__(self) -> Iterator[Doc]: ...

    def count_hint(self) -> int | None:
        """Number of documents if known without reading them all (for progress bars)."""
        ...

    def get_many(self, docids: set[str]) -> dict[str, Doc]:
        """The documents with these ids (those that exist), in time that grows with the ids asked,
        not with the corpus: rerankers call it on collections of millions (harness/docstore.py)."""
        ...
