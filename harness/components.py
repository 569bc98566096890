"""The contract every retriever and reranker keeps, and the defaults it inherits.

Three kinds of component, each built by Hydra from a config node with a ``_target_``:

- :class:`Retriever` (first stage): ``index(corpus, cache_dir)``, then ``retrieve(queries) -> Run``.
- :class:`Pointwise` reranker: ``score(pairs) -> scores``, one number per (query, document) pair. The
  harness does the rest (harness/rerank.py): the depth cut, the score cache, interpolation, the tail.
- :class:`Listwise` reranker: ``rerank(queries, heads, corpus) -> Run`` reorders each query's head
  (the top ``depth`` hits the harness hands it); the harness appends the tail beneath.

What the harness asks of every class, with a default here so a new component writes only what it
changes:

- ``RUNTIME_KEYS``: its own settings that change speed or placement, never results (threads, an
  engine choice, shard sizes). They are left out of every hash, so changing one reuses the caches.
- ``CACHE_VERSION``: bump when a code change alters outputs, so cached runs are not reused.
- ``cache_identity(cfg)``: what decides outputs beyond the config, e.g. the digest of a model
  folder the config only names (retrained in place, it keeps its name).
- ``row_columns(cfg)``: leaderboard columns derived from the config (e.g. the dense index type).
- ``provenance()`` and ``stats()``: leaderboard columns naming what actually ran (model path, hash)
  and counts for metrics.json (pairs scored, LLM calls), read after the stage has run. Numeric
  stats become leaderboard columns; booleans (``llm_weights_loaded``) stay in metrics.json only.
- ``llm_requests(queries, run, corpus)``: a component that spends LLM calls says which it would
  send for this input, without sending them (a :class:`~rankbench.harness.cost.Plan`: backend and
  requests, cached ones marked), so ``estimate_only=true`` can price a run before it is made
  (harness/cost.py). ``None``, the default: it spends none.

Depth and interpolation are not a component's business: they are properties of the pipeline stage
(harness/pipeline.py), so the same scorer serves any depth from one score cache.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from omegaconf import DictConfig

from rankbench.harness.cost import Plan
from rankbench.harness.errors import ConfigError
from rankbench.harness.types import Corpus, Doc, Query, Run

# Settings any component may have that never change what it computes.
COMMON_RUNTIME_KEYS = frozenset({"threads", "batch_size", "device"})


class Component:
    """Defaults shared by all three kinds; see the module docstring."""

    RUNTIME_KEYS: ClassVar[frozenset[str]] = frozenset()
    CACHE_VERSION: ClassVar[int] = 0

    @classmethod
    def runtime_keys(cls) -> frozenset[str]:
        return COMMON_RUNTIME_KEYS | cls.RUNTIME_KEYS

    @classmethod
    def cache_identity(cls, cfg: DictConfig) -> Any | None:
        return None

    @classmethod
    def row_columns(cls, cfg: DictConfig) -> dict[str, str]:
        return {}

    def provenance(self) -> dict[str, str]:
        return {}

    def stats(self) -> dict[str, Any]:
        return {}

    def llm_requests(self, queries: list[Query], run: Run, corpus: Corpus) -> Plan | None:
        """The LLM requests this component would send given ``run`` as its input (for a reranker: the
        heads the harness would hand it); ``None`` when it spends no LLM calls."""
        return None

    @classmethod
    def spends_llm(cls) -> bool:
        return cls.llm_requests is not Component.llm_requests


class Retriever(Component, ABC):
    """A first stage: builds or reuses its index for a corpus, then answers queries."""

    @abstractmethod
    def index(self, corpus: Corpus, cache_dir: Path) -> None: ...

    @abstractmethod
    def retrieve(self, queries: list[Query]) -> Run: ...


class Pointwise(Component, ABC):
    """A reranker that scores each (query, document) pair on its own."""

    @abstractmethod
    def score(self, pairs: list[tuple[Query, Doc]]) -> list[float]: ...

    def named_weight(self, name: str) -> float:
        """The interpolation weight a stage's ``interpolate: <name>`` stands for (e.g. ``dev``)."""
        raise ConfigError(f"interpolate={name!r}: {type(self).__name__} resolves no named weight")


class Listwise(Component, ABC):
    """A reranker that orders a query's candidates together (e.g. an LLM reading a window of them)."""

    @abstractmethod
    def rerank(self, queries: list[Query], heads: Run, corpus: Corpus) -> Run:
        """Each query's head reordered; the harness cuts heads at the stage depth and appends the tail."""
