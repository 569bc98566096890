"""Training data for cross-encoders: positives from qrels, hard negatives from a first-stage run."""

from __future__ import annotations

import random
from dataclasses import dataclass

from rankbench.harness.types import Qrels, Run


@dataclass(frozen=True)
class Example:
    """One query with its judged positives and the unjudged documents its first stage ranked high."""

    qid: str
    positives: tuple[str, ...]
    negatives: tuple[str, ...]


def mine_examples(run: Run, qrels: Qrels, depth: int) -> list[Example]:
    """Top-``depth`` hits minus the positives; queries without a positive or a negative are skipped."""
    examples = []
    for qid in sorted(qrels):
        positives = tuple(d for d, rel in qrels[qid].items() if rel > 0)
        negatives = tuple(d for d, _ in run.get(qid, [])[:depth] if qrels[qid].get(d, 0) <= 0)
        if positives and negatives:
            examples.append(Example(qid, positives, negatives))
    return examples


def sample_group(example: Example, n: int, rng: random.Random) -> list[str]:
    """1 positive then ``n`` negatives (drawn with replacement only when fewer than ``n`` exist)."""
    negatives = example.negatives
    chosen = rng.sample(negatives, n) if len(negatives) >= n else [rng.choice(negatives) for _ in range(n)]
    return [rng.choice(example.positives), *chosen]
