"""A pipeline: one first stage, then up to three reranking stages, each cached under its prefix.

From the command line the stages are the config slots ``retriever``, ``reranker``, ``reranker2`` and
``reranker3`` (conf/config.yaml), each filled from conf/retriever/ or conf/reranker/::

    python evaluate.py reranker=cross_encoder reranker.depth=100 reranker@reranker2=listwise reranker2.depth=20

A stage's ``depth`` (how many hits it reranks) and ``interpolate`` (a weight for the previous stage's
scores) belong to the stage, not to the component: the harness cuts the head, keeps the tail beneath
and interpolates, so every reranker gets them for free.

Each reranking stage's output is cached under a key that chains the keys of every stage before it
(the first stage's is harness/stages.py's), so changing the last stage's settings reruns only that
stage, and a rerun of the whole pipeline loads no model at all.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from rankbench.harness import cache
from rankbench.harness.components import Listwise, Pointwise
from rankbench.harness.errors import ConfigError
from rankbench.harness.rerank import rerank_listwise, rerank_pointwise
from rankbench.harness.runfile import read_trec_run, write_trec_run
from rankbench.harness.score_cache import ScoreCache
from rankbench.harness.stages import StageResult, content_identity, first_stage_run, resolved
from rankbench.harness.types import Corpus, Query, Run

log = logging.getLogger(__name__)

RERANK_SLOTS = ("reranker", "reranker2", "reranker3")
STAGE_KEYS = frozenset({"depth", "interpolate"})  # set on the stage, read by the harness
STAGE_CACHE = "stages"
SEPARATOR = "+"  # in system and run-folder names: safe to type in a shell, unlike ">>"


@dataclass(frozen=True)
class Stage:
    """One step of a pipeline: the config slot it fills and its config node (component + stage keys)."""

    slot: str
    cfg: DictConfig

    @property
    def name(self) -> str:
        return str(self.cfg.name)

    @property
    def depth(self) -> int | None:
        return self.cfg.get("depth")

    @property
    def interpolate(self) -> float | str | None:
        return self.cfg.get("interpolate")

    @cached_property
    def component_cfg(self) -> DictConfig:
        """The node Hydra instantiates: the stage's own keys left out, interpolations (``${cache_dir}``)
        resolved first, against the whole config they came from. Resolved once: the stage key, the score
        key and the instantiation all read it."""
        node = OmegaConf.to_container(self.cfg, resolve=True)
        return OmegaConf.create({k: v for k, v in node.items() if k not in STAGE_KEYS})

    def check(self) -> None:
        """Refuse a depth or weight that could only fail (or mislead) after the earlier stages ran."""
        if not isinstance(self.depth, int) or isinstance(self.depth, bool) or self.depth < 1:
            raise ConfigError(f"{self.slot}.depth must be a positive integer (hits to rerank), got {self.depth!r}")
        weight = self.interpolate
        if isinstance(weight, int | float) and not isinstance(weight, bool) and not 0 <= weight <= 1:
            raise ConfigError(f"{self.slot}.interpolate must be null, a name such as dev, or in [0, 1], got {weight}")


@dataclass(frozen=True)
class Pipeline:
    """The stages in order; built from a composed config, whether it came from the CLI or Python."""

    stages: tuple[Stage, ...]

    @classmethod
    def from_config(cls, cfg: DictConfig) -> Pipeline:
        stages = [Stage("retriever", cfg.retriever)]
        for slot in RERANK_SLOTS:
            node = cfg.get(slot)
            if node is None or not node.get("_target_"):
                continue
            if len(stages) != RERANK_SLOTS.index(slot) + 1:
                raise ConfigError(f"{slot}={node.name} is set but {RERANK_SLOTS[len(stages) - 1]} is none")
            stages.append(Stage(slot, node))
        for stage in stages[1:]:
            stage.check()
        return cls(tuple(stages))

    @property
    def name(self) -> str:
        """The system name: every stage's name, e.g. ``bm25+cross_encoder+listwise``."""
        return SEPARATOR.join(stage.name for stage in self.stages)

    @property
    def rerankers(self) -> tuple[Stage, ...]:
        return self.stages[1:]

    def describe(self) -> str:
        """For people: ``bm25 > cross_encoder@100 > listwise@20``."""
        return " > ".join(s.name if s.depth is None else f"{s.name}@{s.depth}" for s in self.stages)


@dataclass
class PipelineRun:
    run: Run  # the last stage's
    stages: list[StageResult]


def run_pipeline(pipeline: Pipeline, corpus: Corpus, queries: list[Query], cache_dir: Path) -> PipelineRun:
    """Every stage in turn, each from its cache when this exact prefix ran before."""
    results = [first_stage_run(pipeline.stages[0].cfg, corpus, queries, cache_dir)]
    for stage in pipeline.rerankers:
        key = stage_key(stage, results[-1].key)
        with cache.tally() as used:
            result = _cached_stage(stage, key, queries, results[-1].run, corpus, cache_dir)
        result.cache = {kind: dict(counts) for kind, counts in used.items()}
        result.key = key
        results.append(result)
    return PipelineRun(results[-1].run, results)


def stage_key(stage: Stage, previous: dict[str, Any]) -> dict[str, Any]:
    """What decides a reranking stage's output: everything before it, its component, depth and weight."""
    key = {
        "kind": "rerank-stage",
        "previous": cache.key_hash(previous),
        "reranker": resolved(stage.component_cfg),
        "depth": stage.depth,
        "interpolate": stage.interpolate,
        "queries": previous["queries"],
    }
    if (identity := content_identity(stage.cfg)) is not None:
        key["identity"] = identity
    return key


def _cached_stage(
    stage: Stage, key: dict[str, Any], queries: list[Query], run: Run, corpus: Corpus, cache_dir: Path
) -> StageResult:
    root = cache_dir / STAGE_CACHE
    started = time.perf_counter()
    with cache.locked(root, key):
        if (entry := cache.lookup(root, key)) is not None:
            log.info("%s %s from cache %s", stage.slot, stage.name, entry)
            record = json.loads((entry / "stage.json").read_text())
            run = read_trec_run(entry / "run.trec")
            return StageResult(run, time.perf_counter() - started, **record)
        result = _rerank(stage, queries, run, corpus, cache_dir)
        with cache.build(root, key) as tmp:
            write_trec_run(result.run, tmp / "run.trec", tag=stage.name)
            record = {"provenance": result.provenance, "stats": result.stats}
            (tmp / "stage.json").write_text(json.dumps(record, sort_keys=True))
    result.seconds = time.perf_counter() - started
    return result


def _rerank(stage: Stage, queries: list[Query], run: Run, corpus: Corpus, cache_dir: Path) -> StageResult:
    """Build the stage's component and apply it by its kind."""
    component = instantiate(stage.component_cfg)
    provenance: dict[str, str] = {}
    if isinstance(component, Pointwise):
        weight = _weight(stage, component)
        scores = ScoreCache(cache_dir / "scores", _score_key(stage, corpus))
        try:
            run = rerank_pointwise(component, queries, run, corpus, stage.depth, scores, weight)
        finally:
            scores.close()
        provenance = {} if weight is None else {"interpolate": f"{weight:g}"}
    elif isinstance(component, Listwise):
        if stage.interpolate is not None:
            raise ConfigError(f"{stage.slot}.interpolate: {stage.name} is listwise and gives ranks, not scores")
        run = rerank_listwise(component, queries, run, corpus, stage.depth)
    else:
        raise ConfigError(
            f"{stage.slot}._target_={stage.cfg._target_} is neither a Pointwise nor a Listwise reranker "
            "(rankbench.harness.components)"
        )
    return StageResult(run, 0.0, provenance=component.provenance() | provenance, stats=component.stats())


def _weight(stage: Stage, scorer: Pointwise) -> float | None:
    """The stage's interpolation weight as a number: named weights (``dev``) resolved by the scorer."""
    weight = stage.interpolate
    return scorer.named_weight(weight) if isinstance(weight, str) else weight


def _score_key(stage: Stage, corpus: Corpus) -> dict[str, Any]:
    """Scores depend on the scorer and the texts, not on depth or weight: every depth shares them."""
    key: dict[str, Any] = {"reranker": resolved(stage.component_cfg)}
    if (identity := content_identity(stage.cfg)) is not None:
        key["identity"] = identity
    return {**key, "corpus": corpus.fingerprint}
