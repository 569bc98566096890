"""TREC run files: ``qid Q0 docid rank score tag``, one hit per line."""

from __future__ import annotations

from pathlib import Path

from rankbench.harness.errors import DataError
from rankbench.harness.types import Run


def read_trec_run(path: Path) -> Run:
    """Hits per query in file order (the producer's ranking), scores as floats."""
    run: Run = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            cols = line.split()
            if not cols:
                continue
            if len(cols) != 6:
                raise DataError(
                    f"{path} line {number}: expected 6 columns (qid Q0 docid rank score tag), got {len(cols)}"
                )
            try:
                score = float(cols[4])
            except ValueError:
                raise DataError(f"{path} line {number}: score {cols[4]!r} is not a number") from None
            run.setdefault(cols[0], []).append((cols[2], score))
    return run


def write_trec_run(run: Run, path: Path, tag: str) -> None:
    """Write ``run`` ranked as given, scores exactly (repr round-trips), so a cached run scores the same."""
    with open(path, "w", encoding="utf-8") as f:
        for qid, hits in run.items():
            for rank, (docid, score) in enumerate(hits, start=1):
                f.write(f"{qid} Q0 {docid} {rank} {score!r} {tag}\n")
