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
from rankbench.harness.components import Component, Retriever
from rankbench.harness.errors import ConfigError
from rankbench.harness.runfile import read_trec_run, write_trec_run
from rankbench.harness.types import Corpus, Query, Run

log = logging.getLogger(__name__)

# The harness's own settings, which may appear inside a component's config through interpolation
# (``cache_dir: ${cache_dir}``) but never change what it computes. Each component class adds its own
# (harness/components.py: ``RUNTIME_KEYS``), so the harness names no method's settings.
HARNESS_KEYS = frozenset({"path", "overwrite", "data_root", "runs_dir", "cache_dir"})
# Classes are hashed by their path inside the package, as before rankbench was one namespace, so the
# caches and run hashes made then stay valid.
_PACKAGE = "rankbench."


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
    # The cache key this run was stored under; the next stage's key chains it (harness/pipeline.py).
    key: dict[str, Any] = field(default_factory=dict)


def strip_runtime(node: Any, keys: frozenset[str] = HARNESS_KEYS) -> Any:
    """``node`` without the keys that never change results: the harness's, and at each ``_target_``
    those its class declares (applied to that node and the plain settings nested under it)."""
    if isinstance(node, dict):
        if isinstance(target := node.get("_target_"), str):
            keys = HARNESS_KEYS | _component_class(target).runtime_keys()
            node = {**node, "_target_": target.removeprefix(_PACKAGE)}
        return {k: strip_runtime(v, keys) for k, v in node.items() if k not in keys}
    if isinstance(node, list):
        return [strip_runtime(v, keys) for v in node]
    return node


def _component_class(target: str) -> type[Component]:
    """The class a ``_target_`` names; classes outside the contract count as having no runtime keys."""
    found = get_class(target)
    return found if isinstance(found, type) and issubclass(found, Component) else Component


def resolved(value: Any) -> Any:
    """A config node as plain data without runtime keys: the part that goes into hashes."""
    return strip_runtime(OmegaConf.to_container(value, resolve=True)) if OmegaConf.is_config(value) else value


def queries_digest(queries: list[Query]) -> str:
    return hashlib.sha256(json.dumps([(q.qid, q.text) for q in queries]).encode()).hexdigest()[:16]


def content_identity(component: DictConfig | None) -> Any | None:
    """What decides a component's output beyond its config (``cache_identity``, harness/components.py)."""
    if component is None or not component.get("_target_"):
        return None
    return _component_class(component._target_).cache_identity(component)


def row_columns(component: DictConfig | None) -> dict[str, str]:
    """Leaderboard columns a component's class derives from its config (``row_columns``)."""
    if component is None or not component.get("_target_"):
        return {}
    return _component_class(component._target_).row_columns(component)


def spends_llm(component: DictConfig | None) -> bool:
    """Whether a component's class sends LLM calls (it defines ``llm_requests``, harness/components.py)."""
    if component is None or not component.get("_target_"):
        return False
    return _component_class(component._target_).spends_llm()


def first_stage_run(retriever_cfg: DictConfig, corpus: Corpus, queries: list[Query], cache_dir: Path) -> StageResult:
    """The retriever's run, from the stage cache when this exact first stage ran before."""
    key = first_stage_key(retriever_cfg, corpus, queries)
    with cache.tally() as used:
        run, seconds, index_seconds = _cached_run(retriever_cfg, key, corpus, queries, cache_dir)
    cached = {kind: dict(counts) for kind, counts in used.items()}
    return StageResult(run, seconds, index_seconds, cache=cached, key=key)


def _cached_run(
    retriever_cfg: DictConfig, key: dict[str, Any], corpus: Corpus, queries: list[Query], cache_dir: Path
) -> tuple[Run, float, float]:
    """(run, retrieve seconds, index seconds); apart from ``first_stage_run`` because the run's own
    cache entry is counted when its lock is released, which must happen inside the tally."""
    root = cache_dir / "first-stage"
    started = time.perf_counter()
    with cache.locked(root, key):
        entry = cache.lookup(root, key)
        if entry is not None:
            log.info("first stage %s from cache %s", retriever_cfg.name, entry)
            return read_trec_run(entry / "run.trec"), time.perf_counter() - started, 0.0
        retriever = instantiate(retriever_cfg, _recursive_=False)
        if not isinstance(retriever, Retriever):
            raise ConfigError(f"{retriever_cfg._target_} is not a Retriever (rankbench.harness.components)")
        retriever.index(corpus, cache_dir)
        indexed = time.perf_counter()
        run = retriever.retrieve(queries)
        done = time.perf_counter()
        with cache.build(root, key) as tmp:
            write_trec_run(run, tmp / "run.trec", tag=retriever_cfg.name)
    return run, done - indexed, indexed - started


def first_stage_key(retriever_cfg: DictConfig, corpus: Corpus, queries: list[Query]) -> dict[str, Any]:
    """What decides a first-stage run; later stages' keys build on it (harness/pipeline.py)."""
    key = {
        "kind": "first-stage-run",
        "retriever": resolved(retriever_cfg),
        "code": _component_class(retriever_cfg._target_).CACHE_VERSION,
        "corpus": corpus.fingerprint,
        "queries": queries_digest(queries),
    }
    if (identity := content_identity(retriever_cfg)) is not None:
        key["identity"] = identity
    return key
