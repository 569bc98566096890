"""First-stage runs, cached by what decides them, so sweeps and fusions never recompute one."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from rankbench.harness import cache
from rankbench.harness.runfile import read_trec_run, write_trec_run
from rankbench.harness.types import Corpus, Query, Run

log = logging.getLogger(__name__)

# Keys that change how fast a run goes, not what it computes: left out of every hash
# (BM25's numpy and anserini engines give the same run, as tests/test_bm25_fast.py checks).
RUNTIME_KEYS = {
    "engine",
    "threads",
    "batch_size",
    "device",
    "path",
    "overwrite",
    "data_root",
    "runs_dir",
    "cache_dir",
    "java",
    "shard_size",
    "memory_limit",
    "distributed",  # where dense corpus shards are encoded (retrievers/ray_encoding.py): same vectors
    "ray",
}


@dataclass
class StageResult:
    run: Run
    seconds: float
    index_seconds: float = 0.0
    provenance: dict[str, Any] = field(default_factory=dict)  # leaderboard columns naming what ran (model, hash)
    stats: dict[str, Any] = field(default_factory=dict)  # counts for metrics.json (e.g. truncated documents)
    # Cache entries the stage found or built, by cache folder: {"first-stage": {"hit": 1}}; metrics.json
    # records it so a rerun can be shown to have reused its index and run (tests assert it, not timings).
    cache: dict[str, dict[str, int]] = field(default_factory=dict)


def strip_runtime(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: strip_runtime(v) for k, v in node.items() if k not in RUNTIME_KEYS}
    if isinstance(node, list):
        return [strip_runtime(v) for v in node]
    return node


def resolved(value: Any) -> Any:
    """A config node as plain data without runtime keys: the part that goes into hashes."""
    return strip_runtime(OmegaConf.to_container(value, resolve=True)) if OmegaConf.is_config(value) else value


def queries_digest(queries: list[Query]) -> str:
    return hashlib.sha256(json.dumps([(q.qid, q.text) for q in queries]).encode()).hexdigest()[:16]


def content_identity(component: DictConfig | None) -> Any | None:
    """What decides a component's output beyond its config: the content of a model folder the config
    only names (retrained in place, it keeps its name). From the class's ``cache_identity(cfg)``."""
    if component is None or not component.get("_target_"):
        return None
    component_class = get_class(component._target_)
    return component_class.cache_identity(component) if hasattr(component_class, "cache_identity") else None


def row_columns(component: DictConfig | None) -> dict[str, str]:
    """Leaderboard columns a component's class derives from its config (``row_columns(cfg)``), such as
    the dense index type: settings that tell an approximate run from an exact one at a glance."""
    if component is None or not component.get("_target_"):
        return {}
    component_class = get_class(component._target_)
    return component_class.row_columns(component) if hasattr(component_class, "row_columns") else {}


def first_stage_run(retriever_cfg: DictConfig, corpus: Corpus, queries: list[Query], cache_dir: Path) -> StageResult:
    """The retriever's run, from the stage cache when this exact first stage ran before."""
    with cache.tally() as used:
        run, seconds, index_seconds = _cached_run(retriever_cfg, corpus, queries, cache_dir)
    return StageResult(run, seconds, index_seconds, cache={kind: dict(counts) for kind, counts in used.items()})


def _cached_run(
    retriever_cfg: DictConfig, corpus: Corpus, queries: list[Query], cache_dir: Path
) -> tuple[Run, float, float]:
    """(run, retrieve seconds, index seconds); apart from ``first_stage_run`` because the run's own
    cache entry is counted when its lock is released, which must happen inside the tally."""
    retriever_class = get_class(retriever_cfg._target_)
    key = {
        "kind": "first-stage-run",
        "retriever": resolved(retriever_cfg),
        "code": getattr(retriever_class, "CACHE_VERSION", 0),
        "corpus": corpus.fingerprint,
        "queries": queries_digest(queries),
    }
    if (identity := content_identity(retriever_cfg)) is not None:
        key["identity"] = identity
    root = cache_dir / "first-stage"
    started = time.perf_counter()
    with cache.locked(root, key):
        entry = cache.lookup(root, key)
        if entry is not None:
            log.info("first stage %s from cache %s", retriever_cfg.name, entry)
            return read_trec_run(entry / "run.trec"), time.perf_counter() - started, 0.0
        retriever = instantiate(retriever_cfg, _recursive_=False)
        retriever.index(corpus, cache_dir)
        indexed = time.perf_counter()
        run = retriever.retrieve(queries)
        done = time.perf_counter()
        with cache.build(root, key) as tmp:
            write_trec_run(run, tmp / "run.trec", tag=retriever_cfg.name)
    return run, done - indexed, indexed - started
