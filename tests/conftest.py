"""Shared fixtures: tiny inline BEIR datasets and composed configs pointing at tmp folders."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from omegaconf import DictConfig

from rankbench.harness.config import compose
from tests.llm_server import LlamaServer
from tests.ray_head import RayHead, start_head

PROJECT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("RANKBENCH_DATA_ROOT") or PROJECT.parent / "shared" / "data")
# Every Ray the tests start or join keeps to 127.0.0.1 (tests/ray_head.py says why this variable). Set
# before anything imports ray, which reads it once, and inherited by the subprocesses tests run.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def run_python(
    *args: str, cwd: Path = PROJECT, env: dict[str, str] | None = None, timeout: int = 900, check: bool = True
) -> subprocess.CompletedProcess:
    """This venv's Python run as a user would, with the offline data root; ``check`` asserts it succeeded."""
    full_env = {**os.environ, "RANKBENCH_DATA_ROOT": str(SHARED_DATA), **(env or {})}
    result = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def cache_use(run_dir: Path | str) -> dict[str, dict[str, int]]:
    """The cache entries a run's stages reused or built, as its metrics.json records them."""
    return json.loads((Path(run_dir) / "metrics.json").read_text())["cache"]


def cached_answers(folder: Path) -> int:
    """LLM answers stored so far in the response caches under ``folder``: a read-only peek from a test
    while a run writes them (0 until a cache file has its table)."""
    total = 0
    for path in folder.rglob("*.sqlite"):
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            if db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='answers'").fetchone():
                total += db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    return total


TINY_DOCS = [
    {"_id": "d1", "title": "Goldfish", "text": "Goldfish grow as large as their tank allows."},
    {"_id": "d2", "title": "Wifi", "text": "Wifi and bluetooth are wireless radio standards."},
    {"_id": "d3", "title": "Cats", "text": "Cats sleep for most of the day."},
    {"_id": "q2", "title": "Bluetooth", "text": "Bluetooth pairs a phone with wireless headphones."},
]
TINY_QUERIES = [
    {"_id": "q1", "text": "do goldfish grow"},
    {"_id": "q2", "text": "bluetooth wireless"},
    {"_id": "q3", "text": "how long do cats sleep"},
]
TINY_QRELS = [("q1", "d1", 1), ("q2", "d2", 1), ("q3", "d3", 2)]


def write_beir(folder: Path, docs=TINY_DOCS, queries=TINY_QUERIES, qrels=TINY_QRELS, corpus_lines=None) -> Path:
    """A BEIR-format folder; ``corpus_lines`` replaces the corpus with raw text lines."""
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    lines = corpus_lines if corpus_lines is not None else [json.dumps(d) for d in docs]
    (folder / "corpus.jsonl").write_text("".join(line + "\n" for line in lines))
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    rows = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{r}" for q, d, r in qrels]
    (folder / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture
def tiny_beir(tmp_path: Path) -> Path:
    return write_beir(tmp_path / "tiny")


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose conf/ with runs and cache under tmp_path, plus any overrides."""

    def _make(*overrides: str) -> DictConfig:
        return compose([f"runs_dir={tmp_path / 'runs'}", f"data_root={SHARED_DATA}", *overrides])

    return _make


@pytest.fixture(scope="session")
def untrained_cross_encoder(tmp_path_factory) -> Path:
    """all-MiniLM-L6-v2's weights under a fresh one-logit head, saved once: an untrained but real cross-encoder,
    enough for the mechanics of reranking (every run of a session loads these very weights)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rankbench.harness.models import resolve_model

    folder, base = tmp_path_factory.mktemp("ce"), resolve_model("sentence-transformers/all-MiniLM-L6-v2")
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_pretrained(base, num_labels=1).save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def llm_server() -> Iterator[LlamaServer]:
    """One llama.cpp server (SmolLM2-135M) shared by the session; ``.base_url`` is its /v1 root. Never stop it."""
    with LlamaServer() as server:
        yield server


@pytest.fixture
def start_llm_server() -> Iterator[Callable[..., LlamaServer]]:
    """Start a server of this test's own (``LlamaServer`` arguments, e.g. api_key=...); the test may ``.stop()`` it."""
    servers: list[LlamaServer] = []

    def _start(**kwargs) -> LlamaServer:
        servers.append(LlamaServer(**kwargs).start())
        return servers[-1]

    yield _start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def ray_head() -> Iterator[RayHead]:
    """One real Ray head on 127.0.0.1 for the session, started apart from pytest and stopped by its pid."""
    head = start_head(extra_env={"RANKBENCH_DATA_ROOT": str(SHARED_DATA)})  # sweep jobs run in its workers
    try:
        yield head
    finally:
        head.stop()


@pytest.fixture
def ray_client(ray_head: RayHead, monkeypatch: pytest.MonkeyPatch) -> RayHead:
    """This process (and the subprocesses it runs) as a client of ``ray_head``: RAY_ADDRESS and its token."""
    for name, value in {**ray_head.env, "RAY_ADDRESS": ray_head.address}.items():
        monkeypatch.setenv(name, value)
    return ray_head
