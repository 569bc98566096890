"""Pipelines written in Python, resolved through the very configs the command line uses.

``BM25() >> CrossEncoder(model) % 100 >> Listwise() % 20`` is a :class:`System`: a first stage and
rerankers, each a config file from ``conf/`` plus settings. It becomes a config the same way
``python evaluate.py retriever=bm25 reranker=cross_encoder reranker.model=... reranker.depth=100
reranker@reranker2=listwise reranker2.depth=20`` does, so the two share hashes, caches and run folders.
``%`` is the stage's depth (how many hits it reranks), as in PyTerrier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from rankbench.harness.config import compose
from rankbench.harness.errors import ConfigError
from rankbench.harness.pipeline import RERANK_SLOTS, STAGE_KEYS


@dataclass(frozen=True)
class Spec:
    """One stage: a config group (``retriever`` or ``reranker``), a file in it, and settings on top.

    ``option=None`` starts from an empty node, for components that ship no config file: give their
    ``_target_`` (a class path) and settings.
    """

    group: str
    option: str | None
    settings: dict[str, Any] = field(default_factory=dict)

    def __rshift__(self, other: Spec) -> System:
        return System(self) >> other

    def check(self, node: DictConfig) -> None:
        """Refuse a setting the config file lacks, as the command line does (a typo would be silently new)."""
        if self.option is None:
            return
        unknown = sorted(k for k in self.settings if k not in node and k not in STAGE_KEYS)
        if unknown:
            raise ConfigError(
                f"{self.group} {self.option}: no setting {', '.join(unknown)} in conf/{self.group}/{self.option}.yaml; "
                f"it has {', '.join(k for k in node if k != '_target_')}"
            )

    def __mod__(self, depth: int) -> Spec:
        if self.group != "reranker":
            raise ConfigError(f"% {depth}: a depth belongs to a reranking stage, not to {self.option}")
        return replace(self, settings={**self.settings, "depth": depth})


@dataclass(frozen=True)
class System:
    """A first stage and up to three rerankers, in order."""

    retriever: Spec
    rerankers: tuple[Spec, ...] = ()

    def __rshift__(self, other: Spec) -> System:
        if other.group != "reranker":
            raise ConfigError(f"only rerankers follow a first stage, got the {other.group} {other.option}")
        if len(self.rerankers) == len(RERANK_SLOTS):
            raise ConfigError(f"a pipeline has at most {len(RERANK_SLOTS)} reranking stages")
        return System(self.retriever, (*self.rerankers, other))

    def slots(self) -> list[tuple[str, Spec]]:
        return [("retriever", self.retriever), *zip(RERANK_SLOTS, self.rerankers, strict=False)]

    def overrides(self) -> list[str]:
        """The command-line overrides that choose each stage's config file."""
        chosen = []
        for slot, spec in self.slots():
            group = f"{spec.group}@{slot}" if slot not in ("retriever", "reranker") else slot
            chosen.append(f"{group}={spec.option or 'none'}")
        return chosen

    def config(self, overrides: Sequence[str] = ()) -> DictConfig:
        """The composed config: stage files chosen as on the command line, then each stage's settings."""
        cfg = compose([*self.overrides(), *overrides])
        for slot, spec in self.slots():
            spec.check(cfg[slot])
            with open_dict(cfg):  # a component with no file gets all its keys here (e.g. _target_)
                for key, value in spec.settings.items():
                    OmegaConf.update(cfg, f"{slot}.{key}", value, merge=True, force_add=True)
        return cfg


def as_system(system: System | Spec) -> System:
    return system if isinstance(system, System) else System(system)


def Retriever(option: str | None = None, **settings: Any) -> Spec:
    """Any first stage: a file in conf/retriever/ (``Retriever("bm25_multifield")``), plus settings."""
    return Spec("retriever", option, settings)


def Reranker(option: str | None = None, **settings: Any) -> Spec:
    """Any reranker: a file in conf/reranker/, or none and a ``_target_`` class path, plus settings."""
    return Spec("reranker", option, settings)


def BM25(**settings: Any) -> Spec:
    return Retriever("bm25", **settings)


def Dense(**settings: Any) -> Spec:
    return Retriever("dense", **settings)


def Hybrid(**settings: Any) -> Spec:
    return Retriever("hybrid", **settings)


def CrossEncoder(model: str, **settings: Any) -> Spec:
    return Reranker("cross_encoder", model=model, **settings)


def Listwise(**settings: Any) -> Spec:
    return Reranker("listwise", **settings)
