"""The component contract: a reranker written here, outside rankbench, runs in a pipeline with no harness
change, keeps its own runtime key out of every hash, and is held to its contract."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import ClassVar

import pytest

import rankbench as rb
from rankbench.harness.components import Listwise
from rankbench.harness.errors import ConfigError
from rankbench.harness.experiment import run_experiment
from rankbench.harness.rerank import ContractError
from rankbench.harness.runfile import read_trec_run
from rankbench.harness.types import Corpus, Query, Run
from tests.conftest import TINY_DOCS, write_beir

HERE = "tests.test_contract"
DOCS = [*TINY_DOCS, {"_id": "d4", "title": "Goldfish tanks", "text": "A goldfish tank needs a filter."}]
QUERIES = [{"_id": "q1", "text": "goldfish tank grow cats bluetooth wireless"}]


class Shortest(Listwise):
    """Orders each head by document length, shortest first: a listwise reranker with nothing to learn.
    ``fetch`` (documents per corpus lookup) changes how it works, never what it returns."""

    RUNTIME_KEYS = frozenset({"fetch"})
    built: ClassVar[int] = 0
    lookups: ClassVar[list[int]] = []

    def __init__(self, name: str = "shortest", fetch: int = 2):
        Shortest.built += 1
        self.name, self.fetch = name, fetch

    def rerank(self, queries: list[Query], heads: Run, corpus: Corpus) -> Run:
        docids = sorted({d for hits in heads.values() for d, _ in hits})
        texts = {}
        for start in range(0, len(docids), self.fetch):
            chunk = set(docids[start : start + self.fetch])
            Shortest.lookups.append(len(chunk))
            texts |= {d: doc.text for d, doc in corpus.get_many(chunk).items()}
        order = {q.qid: sorted((d for d, _ in heads[q.qid]), key=lambda d: len(texts[d])) for q in queries}
        return {qid: [(d, float(-len(texts[d]))) for d in ranked] for qid, ranked in order.items()}


class Drops(Listwise):
    """Breaks the contract: gives back only the first document of each head."""

    def __init__(self, name: str = "drops"):
        self.name = name

    def rerank(self, queries: list[Query], heads: Run, corpus: Corpus) -> Run:
        return {qid: hits[:1] for qid, hits in heads.items()}


class NoContract:
    """Implements neither ``score`` nor ``rerank``."""

    def __init__(self, name: str = "none_of_them"):
        self.name = name


def reranker(target: str, *settings: str) -> list[str]:
    return [f"+reranker._target_={HERE}.{target}", f"reranker.name={target.lower()}", *settings]


@pytest.fixture
def data(tmp_path: Path) -> str:
    return f"dataset.path={write_beir(tmp_path / 'beir', docs=DOCS, queries=QUERIES)}"


def test_a_reranker_from_a_test_module_runs_with_its_own_runtime_key(make_cfg, data):
    shortest = importlib.import_module(HERE).Shortest  # the class Hydra builds (pytest may import this file apart)
    shortest.built, shortest.lookups = 0, []
    first = read_trec_run(run_experiment(make_cfg(data)).run_dir / "run.trec")["q1"]
    assert len(first) == 5
    outcome = run_experiment(make_cfg(data, *reranker("Shortest", "+reranker.depth=3", "+reranker.fetch=1")))
    ranked = read_trec_run(outcome.run_dir / "run.trec")["q1"]
    texts = {d["_id"]: d["text"] for d in DOCS}
    head = [d for d, _ in first[:3]]
    assert [d for d, _ in ranked[:3]] == sorted(head, key=lambda d: len(texts[d]))
    assert [d for d, _ in ranked[3:]] == [d for d, _ in first[3:]]  # the harness kept the tail beneath
    assert shortest.lookups == [1, 1, 1] and outcome.row["system"] == "bm25+shortest"
    assert outcome.row["reranker_depth"] == 3

    faster = run_experiment(make_cfg(data, *reranker("Shortest", "+reranker.depth=3", "+reranker.fetch=5")))
    assert faster.row is None and faster.run_dir == outcome.run_dir  # a runtime key: the same run, kept
    again = run_experiment(
        make_cfg(data, *reranker("Shortest", "+reranker.depth=3", "+reranker.fetch=5"), "overwrite=true")
    )
    stages = json_of(again.run_dir)["stage_cache"]
    assert stages["reranker"] == {"stages": {"hit": 1}} and shortest.built == 1  # not even constructed again

    python = rb.BM25() >> rb.Reranker(_target_=f"{HERE}.Shortest", name="shortest", fetch=4) % 3
    from_python = run_experiment(python.config([f"runs_dir={Path(outcome.run_dir).parents[2]}", data]))
    assert from_python.run_dir == outcome.run_dir  # the same system, from Python


def test_contract_breaches_are_named(make_cfg, data):
    with pytest.raises(ContractError, match=r"Drops.rerank returned for query q1 1 documents .* the 3"):
        run_experiment(make_cfg(data, *reranker("Drops", "+reranker.depth=3")))
    with pytest.raises(ConfigError, match=r"reranker._target_=tests.test_contract.NoContract is neither"):
        run_experiment(make_cfg(data, *reranker("NoContract", "+reranker.depth=3")))
    with pytest.raises(ConfigError, match=r"reranker.depth must be a positive integer .* got None"):
        run_experiment(make_cfg(data, *reranker("Shortest")))
    with pytest.raises(ConfigError, match=r"reranker.interpolate: shortest is listwise"):
        run_experiment(make_cfg(data, *reranker("Shortest", "+reranker.depth=3", "+reranker.interpolate=0.5")))


def test_stage_settings_are_checked_before_anything_runs(make_cfg, data):
    with pytest.raises(ConfigError, match=r"reranker2=listwise is set but reranker is none"):
        run_experiment(make_cfg(data, "reranker@reranker2=listwise"))
    with pytest.raises(ConfigError, match=r"reranker.interpolate must be null, a name such as dev, or in \[0, 1\]"):
        run_experiment(make_cfg(data, *reranker("Shortest", "+reranker.depth=3", "+reranker.interpolate=1.5")))


def json_of(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "metrics.json").read_text())


def test_the_worked_example_of_the_docs_reranks_and_its_runtime_key_reuses_the_stage(make_cfg, data):
    """docs/adding-a-component.md's TermOverlap, by class path with no config file, on every document."""
    overlap = ["+reranker._target_=examples.term_overlap.TermOverlap", "reranker.name=term_overlap"]
    overlap += ["+reranker.depth=5", "+reranker.min_length=4"]
    outcome = run_experiment(make_cfg(data, *overlap))
    ranked = [d for d, _ in read_trec_run(outcome.run_dir / "run.trec")["q1"]]
    # q1's terms of 4+ letters: goldfish tank grow cats bluetooth wireless. d1 has goldfish, grow and tank
    # (3 of 6); d3 has only cats (1 of 6); the others have 2 of 6.
    assert ranked[0] == "d1" and ranked[-1] == "d3" and outcome.row["rerank_pairs_scored"] == 5
    quiet = run_experiment(make_cfg(data, *overlap, "+reranker.progress=true", "overwrite=true"))
    assert json_of(quiet.run_dir)["stage_cache"]["reranker"] == {"stages": {"hit": 1}}
