"""One evaluation: dataset -> pipeline (a retriever, then rerankers) -> measures -> run folder + row.

Outputs go to ``runs/<dataset>/<system>/<config-hash>/``, written under a temporary name and
renamed into place only when complete, so a failed or killed run never leaves half a folder
and never touches an earlier result. A run is complete when its folder exists and the
leaderboard has its row; complete runs are skipped unless ``overwrite=true``, which is what
makes an interrupted sweep resumable.
"""

from __future__ import annotations

import hashlib
import json
import logging
import resource
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from omegaconf import DictConfig, ListConfig, OmegaConf

from rankbench.harness import leaderboard
from rankbench.harness.datasets import Dataset, load_dataset, self_judged_pairs
from rankbench.harness.errors import ConfigError
from rankbench.harness.metrics import evaluate, parse_measures
from rankbench.harness.pipeline import RERANK_SLOTS, Pipeline, PipelineRun, run_pipeline
from rankbench.harness.provenance import git_commit
from rankbench.harness.rundir import write_run_dir
from rankbench.harness.stages import content_identity, resolved, row_columns, strip_runtime
from rankbench.harness.types import Query

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    run_dir: Path
    metrics: dict[str, float]
    row: dict[str, Any] | None  # None when a complete earlier run was kept


def _resolved(cfg: DictConfig, key: str) -> Any:
    return resolved(cfg.get(key))


def config_hash(cfg: DictConfig, dataset: Dataset) -> str:
    """Identity of a run: every result-affecting setting plus the data it was run on."""
    payload = {k: _resolved(cfg, k) for k in ("dataset", "retriever", "reranker", "measures", "max_queries")}
    later = [slot for slot in RERANK_SLOTS[1:] if cfg.get(slot, {}).get("_target_")]
    payload |= {slot: _resolved(cfg, slot) for slot in later}  # absent when unused: two-stage hashes stay
    payload["data"] = dataset.fingerprint
    identities = {k: content_identity(cfg.get(k)) for k in ("retriever", *RERANK_SLOTS)}
    if identities := {k: v for k, v in identities.items() if v is not None}:  # absent: older hashes stay valid
        payload["identity"] = identities
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def system_hash(cfg: DictConfig) -> str:
    """Identity of a system across datasets, so aggregates (harness/aggregate.py) can match its runs: the
    stage configs that decide results, where a value the dataset supplies (``remove_query:
    ${dataset.remove_query}``) counts by its expression, not by the dataset's value."""
    used = ["retriever", "reranker", *(slot for slot in RERANK_SLOTS[1:] if cfg.get(slot, {}).get("_target_"))]
    payload: dict[str, Any] = {slot: strip_runtime(_without_dataset(cfg[slot])) for slot in used}
    identities = {k: content_identity(cfg.get(k)) for k in used}
    if identities := {k: v for k, v in identities.items() if v is not None}:
        payload["identity"] = identities
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def _without_dataset(node: Any) -> Any:
    """``node`` as plain data, resolved except interpolations of ``dataset``, kept as their text."""
    if isinstance(node, DictConfig):
        return {k: _dataset_expression(node, k) or _without_dataset(node[k]) for k in node}
    if isinstance(node, ListConfig):
        return [_dataset_expression(node, i) or _without_dataset(node[i]) for i in range(len(node))]
    return node


def _dataset_expression(node: DictConfig | ListConfig, key: Any) -> str | None:
    if not OmegaConf.is_interpolation(node, key):
        return None
    text = str(node._get_node(key)._value())
    return text if "dataset." in text else None


def system_name(cfg: DictConfig) -> str:
    return Pipeline.from_config(cfg).name


def select_queries(queries: list[Query], max_queries: int | None) -> list[Query]:
    """The first ``max_queries`` queries in natural qid order (all when None)."""
    if max_queries is None:
        return queries
    if max_queries < 1:
        raise ConfigError(f"max_queries must be a positive integer or null, got {max_queries}")
    return queries[:max_queries]


def kept_measures(run_dir: Path, board: Path, digest: str) -> dict[str, float] | None:
    """The measures of the earlier complete run for this hash (evaluated or imported), restoring its
    leaderboard row if a kill lost it; None when there is none."""
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        return None
    metrics = json.loads(metrics_path.read_text())
    if not any(r.get("config_hash") == digest for r in leaderboard.read_rows(board)):
        leaderboard.append(board, metrics["row"])
        log.info("restored the leaderboard row of %s", run_dir)
    return metrics["measures"]


def warn_self_judgements(cfg: DictConfig, dataset: Dataset) -> None:
    """``remove_query`` drops every hit whose docid equals the qid: say so when qrels judge such a pair."""
    if not _removes_query_hits(OmegaConf.to_container(cfg.retriever, resolve=True)):
        return
    if pairs := self_judged_pairs(dataset.qrels):
        relevant = sum(1 for _, grade in pairs if grade > 0)
        log.warning(
            "%s: remove_query is on, and the qrels judge %d query-document pairs with the same id (%d relevant, "
            "e.g. %s): those documents can never be retrieved. If query and document ids are unrelated, set "
            "dataset.remove_query=false.",
            dataset.name,
            len(pairs),
            relevant,
            ", ".join(qid for qid, _ in pairs[:5]),
        )


def _removes_query_hits(node: Any) -> bool:
    """True when this retriever (or any stage of a hybrid) has ``remove_query`` on."""
    if isinstance(node, dict):
        return node.get("remove_query") is True or any(_removes_query_hits(v) for v in node.values())
    if isinstance(node, list):
        return any(_removes_query_hits(v) for v in node)
    return False


@contextmanager
def one_run_at_a_time(runs: Path, digest: str) -> Iterator[None]:
    """Runs of one config hash (a sweep launched twice) take turns, so the later ones find the first's
    complete run and skip it instead of appending a second row."""
    lock = FileLock(str(runs / ".locks" / f"{digest}.lock"))
    (runs / ".locks").mkdir(parents=True, exist_ok=True)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another run of config %s to finish", digest)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


@dataclass
class Evaluation:
    """A pipeline's run scored on the selected queries, before anything is written."""

    pipeline: Pipeline
    result: PipelineRun
    aggregate: dict[str, float]
    per_query: dict[str, dict[str, float]]


def prepare(cfg: DictConfig, dataset: Dataset | None = None) -> tuple[Dataset, list[Query], list[Any]]:
    """The dataset (loaded unless given), the queries ``max_queries`` selects and the parsed measures."""
    measures = parse_measures(list(cfg.measures))
    dataset = dataset or load_dataset(cfg.dataset, cfg.data_root, Path(cfg.cache_dir))
    queries = select_queries(dataset.queries, cfg.max_queries)
    if empty := [q.qid for q in queries if not q.text.strip()]:
        log.warning("%d queries have empty text and will retrieve nothing: %s", len(empty), ", ".join(empty[:10]))
    warn_self_judgements(cfg, dataset)
    return dataset, queries, measures


def evaluate_pipeline(cfg: DictConfig, dataset: Dataset, queries: list[Query], measures: list[Any]) -> Evaluation:
    """Every stage (each from its cache when it ran before), then the measures."""
    pipeline = Pipeline.from_config(cfg)
    result = run_pipeline(pipeline, dataset.corpus, queries, Path(cfg.cache_dir))
    aggregate, per_query = evaluate(result.run, {q.qid: dataset.qrels[q.qid] for q in queries}, measures)
    return Evaluation(pipeline, result, aggregate, per_query)


def run_experiment(cfg: DictConfig) -> Outcome:
    started = time.perf_counter()
    runs = Path(cfg.runs_dir).absolute()
    dataset, queries, measures = prepare(cfg)
    digest = config_hash(cfg, dataset)
    run_dir = runs / cfg.dataset.name / system_name(cfg) / digest
    board = runs / "leaderboard.csv"
    with one_run_at_a_time(runs, digest):
        if not cfg.overwrite and (kept := kept_measures(run_dir, board, digest)) is not None:
            log.info(
                "skipping %s %s: complete run %s exists (overwrite=true recomputes)", system_name(cfg), digest, run_dir
            )
            return Outcome(run_dir, kept, None)
        return _compute(cfg, dataset, queries, measures, run_dir, board, started)


def _compute(
    cfg: DictConfig,
    dataset: Dataset,
    queries: list[Query],
    measures: list[Any],
    run_dir: Path,
    board: Path,
    started: float,
) -> Outcome:
    """Every stage, the measures, the run folder and its leaderboard row."""
    digest = run_dir.name
    scored = evaluate_pipeline(cfg, dataset, queries, measures)
    pipeline, result, aggregate, per_query = scored.pipeline, scored.result, scored.aggregate, scored.per_query
    first, rerank = result.stages[0], result.stages[1:]
    timings = {
        "index_s": first.index_seconds,
        "retrieve_s": first.seconds,
        "rerank_s": sum(stage.seconds for stage in rerank),
        "total_s": time.perf_counter() - started,
    }
    row = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "dataset": cfg.dataset.name,
        **stage_columns(pipeline, result),
        "system": pipeline.name,
        "system_hash": system_hash(cfg),
        "config_hash": digest,
        "git_commit": git_commit(),
        "max_queries": "" if cfg.max_queries is None else cfg.max_queries,
        "num_queries": len(queries),
        **{k: f"{v:.4f}" for k, v in aggregate.items()},
        **{k: f"{v:.3f}" for k, v in timings.items()},
        "peak_rss_mb": f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}",
        "run_path": str(run_dir),
    }
    metrics = {
        "measures": aggregate,
        "num_queries": len(per_query),
        "qrels_unknown_queries": len(dataset.unknown_qrels_queries),
        "dataset_fingerprint": dataset.fingerprint,
        "dataset_source": dataset.source,
        "pipeline": pipeline.describe(),
        **{f"{stage.slot}_stats": done.stats for stage, done in zip(pipeline.rerankers, rerank, strict=True)},
        # cache entries each stage reused or built ({"first-stage": {"hit": 1}, "stages": {"built": 1}}), so a
        # rerun can be shown to have reused its index and runs (tests assert it, not timings)
        "cache": _merged([stage.cache for stage in result.stages]),
        "stage_cache": {stage.slot: done.cache for stage, done in zip(pipeline.stages, result.stages, strict=True)},
        "row": row,
    }
    write_run_dir(run_dir, result.run, metrics, per_query, OmegaConf.to_yaml(cfg, resolve=True), pipeline.name)
    leaderboard.append(board, row)
    return Outcome(run_dir, aggregate, row)


def stage_columns(pipeline: Pipeline, result: PipelineRun) -> dict[str, Any]:
    """Leaderboard columns naming every stage: ``retriever``, ``reranker``, ``reranker2``..., each with
    the columns its class derives (``retriever_index``) or reports (``reranker_model``), its depth, and
    numeric stats (``rerank_pairs_scored``; ``reranker2_llm_calls``)."""
    first = pipeline.stages[0]
    columns: dict[str, Any] = {"retriever": first.name}
    columns |= {f"retriever_{k}": v for k, v in row_columns(first.cfg).items()}
    columns["reranker"] = "none"
    for stage, done in zip(pipeline.rerankers, result.stages[1:], strict=True):
        columns[stage.slot] = stage.name
        columns[f"{stage.slot}_depth"] = stage.depth
        columns |= {f"{stage.slot}_{k}": v for k, v in {**row_columns(stage.cfg), **done.provenance}.items()}
        prefix = "rerank" if stage.slot == "reranker" else stage.slot  # rerank_*: the name rows always had
        numbers = {k: v for k, v in done.stats.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        columns |= {f"{prefix}_{k}": v for k, v in numbers.items()}  # flags stay in metrics.json
    return columns


def _merged(tallies: list[dict[str, dict[str, int]]]) -> dict[str, dict[str, int]]:
    merged: dict[str, Counter[str]] = defaultdict(Counter)
    for tally in tallies:
        for kind, counts in tally.items():
            merged[kind].update(counts)
    return {kind: dict(counts) for kind, counts in merged.items()}
