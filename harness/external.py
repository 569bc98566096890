"""Runs rankbench did not produce, put on the leaderboard: ``python -m harness.leaderboard import``.

A TREC run file (a published run, another toolkit's output, a fusion written by hand) is read
strictly, scored with the dataset's configured measures and qrels by the same code as
``evaluate.py`` (``harness.metrics.evaluate``: a judged query the run lacks scores 0), and written
as a run folder and a leaderboard row with ``external=true``. From then on it is a run like any
other: ``--baseline``, ``--all-pairs``, ``--ci`` and ``--report`` read its perquery.csv.

The row's config hash comes from the file's content (with the dataset's fingerprint, the
measures and the name), so importing the same file again keeps the earlier run, and a changed
file gives a new row beside the old one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from rankbench.harness import leaderboard
from rankbench.harness.cache import file_digest
from rankbench.harness.config import compose
from rankbench.harness.datasets import Dataset, load_dataset
from rankbench.harness.errors import DataError, RankbenchError
from rankbench.harness.experiment import kept_measures, one_run_at_a_time
from rankbench.harness.metrics import evaluate, parse_measures
from rankbench.harness.rundir import write_run_dir
from rankbench.harness.types import Run

log = logging.getLogger(__name__)
_SHOWN = 5  # unknown qids listed in an error; the rest are counted


@dataclass
class Imported:
    """Where the import landed; ``row`` is None when an earlier import of the same content was kept."""

    run_dir: Path
    measures: dict[str, float]
    row: dict[str, Any] | None


def read_run(path: Path, qids: set[str]) -> tuple[Run, set[str]]:
    """The run, each query's hits by descending score (the file's rank breaks ties), and its tags.

    Every line must be ``qid Q0 docid rank score tag``; a qid outside ``qids`` (the dataset's
    judged queries) is an error, since it usually means the wrong dataset or split.
    """
    hits: dict[str, list[tuple[float, int, str]]] = {}
    first_line: dict[tuple[str, str], int] = {}
    unknown: dict[str, int] = {}
    tags: set[str] = set()
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            qid, docid, rank, score, tag = _fields(path, number, line.split())
            if (qid, docid) in first_line:
                raise DataError(
                    f"{path}:{number}: document {docid!r} appears twice for query {qid!r} "
                    f"(first at line {first_line[(qid, docid)]})"
                )
            first_line[(qid, docid)] = number
            if qid not in qids:
                unknown.setdefault(qid, number)
                continue
            hits.setdefault(qid, []).append((score, rank, docid))
            tags.add(tag)
    if unknown:
        shown = ", ".join(f"{q!r} (line {n})" for q, n in list(unknown.items())[:_SHOWN])
        more = f" and {len(unknown) - _SHOWN} more" if len(unknown) > _SHOWN else ""
        raise DataError(
            f"{path}: {len(unknown)} queries are not among the dataset's {len(qids)} judged queries: "
            f"{shown}{more}; is it a run on another dataset or split?"
        )
    if not hits:
        raise DataError(f"{path} holds no hits")
    run = {qid: [(d, s) for s, _, d in sorted(h, key=lambda x: (-x[0], x[1]))] for qid, h in hits.items()}
    return run, tags


def _fields(path: Path, number: int, cols: list[str]) -> tuple[str, str, int, float, str]:
    """One line's qid, docid, rank, score and tag, or a DataError naming the file and line."""
    if len(cols) != 6:
        raise DataError(f"{path}:{number}: expected 6 columns (qid Q0 docid rank score tag), got {len(cols)}")
    qid, _, docid, rank, score, tag = cols
    try:
        rank_value = int(rank)
    except ValueError:
        raise DataError(f"{path}:{number}: rank {rank!r} is not an integer") from None
    try:
        score_value = float(score)
    except ValueError:
        raise DataError(f"{path}:{number}: score {score!r} is not a number") from None
    if not math.isfinite(score_value):
        raise DataError(f"{path}:{number}: score {score!r} is not a finite number")
    return qid, docid, rank_value, score_value, tag


def import_hash(digest: str, dataset: Dataset, measures: list[str], name: str) -> str:
    """The row's config hash: the file's content, what it is scored against, and its name."""
    payload = {"external": digest, "data": dataset.fingerprint, "measures": measures, "name": name}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def import_run(path: Path, dataset_name: str, name: str, runs: Path, overrides: tuple[str, ...] = ()) -> Imported:
    """Score ``path`` on ``dataset_name`` (a conf/dataset name) and put it on ``runs``' leaderboard."""
    if not name or "/" in name or name in (".", ".."):
        raise leaderboard.LeaderboardError(f"--name must be a plain folder name, got {name!r}")
    if not path.is_file():
        raise DataError(f"run file {path} does not exist")
    runs = runs.absolute()
    cfg = compose([f"dataset={dataset_name}", f"runs_dir={runs}", *overrides])
    measures = parse_measures(list(cfg.measures))
    dataset = load_dataset(cfg.dataset, cfg.data_root, Path(cfg.cache_dir))
    digest = file_digest(path)
    config_hash = import_hash(digest, dataset, [str(m) for m in measures], name)
    run_dir = runs / dataset.name / name / config_hash
    board = runs / "leaderboard.csv"
    with one_run_at_a_time(runs, config_hash):
        if (kept := kept_measures(run_dir, board, config_hash)) is not None:
            log.info("kept %s: this file was imported before (same content)", run_dir)
            return Imported(run_dir, kept, None)
        run, tags = read_run(path, {q.qid for q in dataset.queries})
        qrels = {q.qid: dataset.qrels[q.qid] for q in dataset.queries}  # what evaluate.py scores against
        aggregate, per_query = evaluate(run, qrels, measures)
        row = _row(dataset.name, name, config_hash, len(per_query), aggregate, run_dir)
        missing = sorted(qrels.keys() - run.keys())
        if missing:
            log.warning("%s has no hits for %d of %d judged queries: they score 0", path, len(missing), len(per_query))
        metrics = {
            "measures": aggregate,
            "num_queries": len(per_query),
            "queries_without_hits": len(missing),
            "external": {"file": str(path.absolute()), "digest": digest, "tags": sorted(tags)},
            "dataset_fingerprint": dataset.fingerprint,
            "dataset_source": dataset.source,
            "row": row,
        }
        described = {"external": metrics["external"], "dataset": dataset.name, "name": name}
        described["measures"] = [str(m) for m in measures]
        write_run_dir(run_dir, run, metrics, per_query, yaml.safe_dump(described, sort_keys=False), name)
        leaderboard.append(board, row)
        return Imported(run_dir, aggregate, row)


def _row(
    dataset: str, name: str, config_hash: str, queries: int, aggregate: dict[str, float], run_dir: Path
) -> dict[str, Any]:
    """A leaderboard row: no timings (rankbench did not run it) and no git commit (not its code)."""
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "dataset": dataset,
        "retriever": "external",
        "system": name,
        "external": "true",
        "config_hash": config_hash,
        "max_queries": "",
        "num_queries": queries,
        **{k: f"{v:.4f}" for k, v in aggregate.items()},
        "run_path": str(run_dir),
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness.leaderboard import", description="Score a TREC run file and add it to the leaderboard."
    )
    parser.add_argument("run", type=Path, help="TREC run file: qid Q0 docid rank score tag")
    parser.add_argument("--dataset", required=True, help="dataset config name (conf/dataset/), e.g. scifact")
    parser.add_argument("--name", required=True, help="system name for the row and the run folder")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="runs folder holding leaderboard.csv")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config override, e.g. dataset.path=/data/x"
    )
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        done = import_run(args.run, args.dataset, args.name, args.runs, tuple(args.set))
    except RankbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    state = "imported" if done.row is not None else "already imported (same content), kept"
    values = ", ".join(f"{k} {v:.4f}" for k, v in done.measures.items())
    print(f"{state}: {done.run_dir}\n{values}")
    return 0
