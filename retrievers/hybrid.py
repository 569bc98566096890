"""Hybrid retrieval: fuse two or more first stages (e.g. BM25 + dense) into one run.

Each input is an ordinary retriever config, run through the harness's stage cache, so a
hybrid sweep (RRF vs linear, weights) never recomputes its inputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from omegaconf import DictConfig

from rankbench.harness.components import Retriever
from rankbench.harness.errors import ConfigError
from rankbench.harness.fusion import NORMALIZATIONS, linear, rrf
from rankbench.harness.stages import first_stage_run
from rankbench.harness.types import Corpus, Query, Run

METHODS = ("rrf", "linear")


class Hybrid(Retriever):
    CACHE_VERSION = 1

    def __init__(
        self,
        stages: DictConfig,
        method: str = "rrf",
        rrf_k: float = 60.0,
        normalization: str = "minmax",
        weights: DictConfig | dict | None = None,
        hits: int = 1000,
        name: str = "hybrid",
    ):
        if method not in METHODS:
            raise ConfigError(f"retriever.method must be one of {', '.join(METHODS)}, got {method!r}")
        if len(stages) < 2:
            raise ConfigError(f"retriever.stages needs at least two retrievers to fuse, got {list(stages)}")
        if method == "linear" and normalization not in NORMALIZATIONS:
            raise ConfigError(
                f"retriever.normalization must be one of {', '.join(NORMALIZATIONS)}, got {normalization!r}"
            )
        if not _is_number(rrf_k) or rrf_k < 0:
            raise ConfigError(f"retriever.rrf_k must be a finite number >= 0, got {rrf_k!r}")
        self.stages, self.method, self.rrf_k = stages, method, rrf_k
        self.normalization, self.weights = normalization, checked_weights(weights or {}, list(stages))
        self.hits, self.name = hits, name
        self._corpus: Corpus | None = None
        self._cache_dir: Path | None = None

    def index(self, corpus: Corpus, cache_dir: Path) -> None:
        """Nothing of its own: each input indexes (or reuses its index) when its run is needed."""
        self._corpus, self._cache_dir = corpus, cache_dir

    def retrieve(self, queries: list[Query]) -> Run:
        if self._corpus is None or self._cache_dir is None:
            raise RuntimeError("Hybrid.retrieve called before index()")
        runs = {
            name: first_stage_run(cfg, self._corpus, queries, self._cache_dir).run for name, cfg in self.stages.items()
        }
        if self.method == "rrf":
            fused = rrf(runs, self.hits, self.rrf_k, self.weights)
        else:
            fused = linear(runs, self.hits, self.normalization, self.weights)
        return {q.qid: fused.get(q.qid, []) for q in queries}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def checked_weights(weights: Mapping[str, object], stages: list[str]) -> dict[str, float]:
    """Each stage's weight, checked before any input is computed: a typo'd stage name, a negative or
    non-numeric weight, or all weights zero (documents then tie and sort by id) would each give a
    plausible-looking but meaningless run. Stages not named weigh 1."""
    unknown = set(weights) - set(stages)
    if unknown:
        raise ConfigError(f"retriever.weights names {sorted(unknown)}, not among retriever.stages {stages}")
    for name, value in weights.items():
        if not _is_number(value) or value < 0:
            raise ConfigError(f"retriever.weights.{name} must be a finite number >= 0, got {value!r}")
    checked = {name: float(value) for name, value in weights.items()}
    if all(checked.get(name, 1.0) == 0 for name in stages):
        raise ConfigError(f"retriever.weights are all zero ({checked}): at least one stage must weigh more than 0")
    return checked
