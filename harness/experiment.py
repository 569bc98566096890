"""One evaluation: dataset -> retriever -> optional reranker -> measures -> run folder + row.

Outputs go to ``runs/<dataset>/<system>/<config-hash>/`` and are written under a temporary
name, renamed into place only when complete, so a failed run never leaves half a folder and
never touches an earlier result.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import resource
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from harness import cache, java, leaderboard
from harness.datasets import Dataset, load_dataset
from harness.errors import ConfigError
from harness.metrics import evaluate, parse_measures
from harness.runfile import write_trec_run
from harness.types import Query

log = logging.getLogger(__name__)

# Keys that change how fast a run goes, not what it computes: left out of the config hash.
RUNTIME_KEYS = {
    "threads",
    "batch_size",
    "device",
    "path",
    "overwrite",
    "data_root",
    "runs_dir",
    "cache_dir",
    "java",
}
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Outcome:
    run_dir: Path
    metrics: dict[str, float]
    row: dict[str, Any] | None  # None when an existing run was kept


def _strip_runtime(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_runtime(v) for k, v in node.items() if k not in RUNTIME_KEYS}
    if isinstance(node, list):
        return [_strip_runtime(v) for v in node]
    return node


def config_hash(cfg: DictConfig, dataset: Dataset) -> str:
    """Identity of a run: every result-affecting setting plus the data it was run on."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    payload = _strip_runtime(
        {k: resolved.get(k) for k in ("dataset", "retriever", "reranker", "measures", "max_queries")}
    )
    payload["data"] = dataset.fingerprint
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def system_name(cfg: DictConfig) -> str:
    reranker = cfg.reranker.get("name", "none")
    return cfg.retriever.name if reranker == "none" else f"{cfg.retriever.name}>>{reranker}"


def select_queries(queries: list[Query], max_queries: int | None) -> list[Query]:
    """The first ``max_queries`` queries in natural qid order (all when None)."""
    if max_queries is None:
        return queries
    if max_queries < 1:
        raise ConfigError(f"max_queries must be a positive integer or null, got {max_queries}")
    return queries[:max_queries]


def git_commit() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha.stdout.strip()[:12] + ("-dirty" if dirty.stdout.strip() else "")


def run_experiment(cfg: DictConfig) -> Outcome:
    started = time.perf_counter()
    measures = parse_measures(list(cfg.measures))
    java.configure(heap=cfg.java.heap)
    dataset = load_dataset(cfg.dataset, cfg.data_root)
    queries = select_queries(dataset.queries, cfg.max_queries)
    if empty := [q.qid for q in queries if not q.text.strip()]:
        log.warning("%d queries have empty text and will retrieve nothing: %s", len(empty), ", ".join(empty[:10]))
    qrels = {q.qid: dataset.qrels[q.qid] for q in queries}
    digest = config_hash(cfg, dataset)
    run_dir = Path(cfg.runs_dir) / cfg.dataset.name / system_name(cfg) / digest
    if (run_dir / "metrics.json").is_file() and not cfg.overwrite:
        log.info("run %s exists; keeping it (overwrite=true recomputes)", run_dir)
        return Outcome(run_dir, json.loads((run_dir / "metrics.json").read_text())["measures"], None)

    retriever = instantiate(cfg.retriever)
    t0 = time.perf_counter()
    retriever.index(dataset.corpus, Path(cfg.cache_dir))
    t1 = time.perf_counter()
    run = retriever.retrieve(queries)
    t2 = time.perf_counter()
    if cfg.reranker.get("_target_"):
        run = instantiate(cfg.reranker).rerank(queries, run, dataset.corpus)
    t3 = time.perf_counter()
    aggregate, per_query = evaluate(run, qrels, measures)

    timings = {
        "index_s": t1 - t0,
        "retrieve_s": t2 - t1,
        "rerank_s": t3 - t2,
        "total_s": time.perf_counter() - started,
    }
    _write_run_dir(run_dir, cfg, dataset, run, aggregate, per_query, timings, digest)
    row = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "dataset": cfg.dataset.name,
        "retriever": cfg.retriever.name,
        "reranker": cfg.reranker.get("name", "none"),
        "system": system_name(cfg),
        "config_hash": digest,
        "git_commit": git_commit(),
        "max_queries": "" if cfg.max_queries is None else cfg.max_queries,
        "num_queries": len(queries),
        **{k: f"{v:.4f}" for k, v in aggregate.items()},
        **{k: f"{v:.3f}" for k, v in timings.items()},
        "peak_rss_mb": f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}",
        "run_path": str(run_dir),
    }
    leaderboard.append(Path(cfg.runs_dir) / "leaderboard.csv", row)
    return Outcome(run_dir, aggregate, row)


def _write_run_dir(
    run_dir: Path,
    cfg: DictConfig,
    dataset: Dataset,
    run: dict[str, list[tuple[str, float]]],
    aggregate: dict[str, float],
    per_query: dict[str, dict[str, float]],
    timings: dict[str, float],
    digest: str,
) -> None:
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = run_dir.with_name(f".{run_dir.name}.tmp-{time.time_ns()}")
    tmp.mkdir()
    try:
        write_trec_run(run, tmp / "run.trec", tag=system_name(cfg))
        metrics = {
            "measures": aggregate,
            "num_queries": len(per_query),
            "qrels_unknown_queries": len(dataset.unknown_qrels_queries),
            "dataset_fingerprint": dataset.fingerprint,
            "dataset_source": dataset.source,
            "config_hash": digest,
            "timings_s": timings,
        }
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        with open(tmp / "perquery.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["qid", *aggregate])
            for qid, values in per_query.items():
                writer.writerow([qid, *(f"{values[m]:.6f}" for m in aggregate)])
        (tmp / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        cache.replace_dir(tmp, run_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
