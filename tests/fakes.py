"""Scripted fakes for pure pipeline logic; no model runs here, and each says so in its name."""

from __future__ import annotations

from typing import ClassVar

from harness.types import Doc, Query


class ScriptedLengthScorer:
    """Scores a pair by the document's text length; records every pair it was asked to score."""

    calls: ClassVar[list[tuple[str, str]]] = []

    def __init__(self, name: str = "length", depth: int = 100) -> None:
        self.name, self.depth = name, depth

    def score(self, pairs: list[tuple[Query, Doc]]) -> list[float]:
        ScriptedLengthScorer.calls += [(q.qid, d.docid) for q, d in pairs]
        return [float(len(d.text)) for _, d in pairs]
