"""Dense corpus encoding on Ray actors, against a real Ray head on 127.0.0.1 (tests/ray_head.py).

The cluster fills the very cache entry a single process would, a laptop run reuses it, and a
worker that dies costs only its shard. Settings are refused with the key at fault.
"""

from __future__ import annotations

import logging
import re
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from omegaconf import OmegaConf

from rankbench.harness.config import compose
from rankbench.harness.datasets import BeirCorpus
from rankbench.harness.errors import ConfigError
from rankbench.harness.experiment import config_hash
from rankbench.harness.models import encoder_spec
from rankbench.harness.readers import BeirSource
from rankbench.harness.stages import resolved
from rankbench.retrievers.dense import Dense
from rankbench.retrievers.encoder import TorchEncoder
from tests.conftest import SHARED_DATA, write_beir
from tests.ray_head import RayHead
from tests.test_dense import MINILM, CountedDense, CountingEncoder

DOCS, SHARD, TOKENS = 48, 8, 64  # six shards of short texts: the tests time Ray, not the model


@pytest.fixture(scope="module")
def scifact_slice(tmp_path_factory: pytest.TempPathFactory) -> BeirCorpus:
    """The first DOCS SciFact documents, as a corpus of their own."""
    source = SHARED_DATA / "beir" / "scifact.zip"
    if not source.is_file():
        pytest.skip(f"SciFact not found under {SHARED_DATA}")
    with zipfile.ZipFile(source) as z:
        lines = z.read("scifact/corpus.jsonl").decode().splitlines()[:DOCS]
    return BeirCorpus(BeirSource(write_beir(tmp_path_factory.mktemp("slice"), corpus_lines=lines)))


@pytest.fixture(scope="module")
def minilm() -> TorchEncoder:
    """The driver's encoder, built once for the module (each Ray worker builds its own from the settings)."""
    return TorchEncoder(encoder_spec(MINILM, max_length=TOKENS), dtype="float32")


class OnRay(Dense):
    """Dense with distributed=ray whose driver-side encoder is the module's, not built anew per index()."""

    def __init__(self, head: RayHead, driver: TorchEncoder, **ray_settings):
        super().__init__(
            model=MINILM,
            dtype="float32",
            max_length=TOKENS,
            shard_size=SHARD,
            distributed="ray",
            ray={"address": head.address, "workers": 2, **ray_settings},
        )
        self.driver = driver

    def make_encoder(self, cache_dir: Path) -> TorchEncoder:
        return self.driver


def local(encoder: TorchEncoder) -> CountedDense:
    return CountedDense(CountingEncoder(encoder), shard_size=SHARD)


@pytest.mark.slow
def test_two_workers_fill_the_cache_a_local_run_fills_and_reuses(
    ray_client: RayHead, scifact_slice, minilm, tmp_path: Path
):
    cluster_cache, laptop_cache = tmp_path / "cluster", tmp_path / "laptop"
    on_cluster = OnRay(ray_client, minilm)
    on_cluster.index(scifact_slice, cluster_cache)
    alone = local(minilm)
    alone.index(scifact_slice, laptop_cache)
    assert len(alone.counting.texts) == DOCS  # the reference was encoded here, in one process
    a, b = on_cluster.embeddings, alone.embeddings
    assert a.folder.name == b.folder.name  # the same cache key
    assert a.docids == b.docids and len(a.docids) == DOCS
    va, vb = np.asarray(a.vectors, dtype=np.float32), np.asarray(b.vectors, dtype=np.float32)
    cosine = (va * vb).sum(1) / np.linalg.norm(va, axis=1) / np.linalg.norm(vb, axis=1)
    assert cosine.min() >= 0.9999
    reuse = local(minilm)
    reuse.index(scifact_slice, cluster_cache)
    assert reuse.counting.texts == [] and reuse.embeddings.folder == a.folder  # the laptop reuses the cluster's


@pytest.mark.slow
def test_a_dead_worker_fails_the_run_and_a_rerun_encodes_only_missing_shards(
    ray_client: RayHead, scifact_slice, minilm, tmp_path: Path, monkeypatch, caplog
):
    from rankbench.retrievers.ray_encoding import KILL_HOOK, RayWorkerError

    monkeypatch.setenv(KILL_HOOK, "2")
    with pytest.raises(RayWorkerError, match="rerun the same command to encode only the missing ones"):
        OnRay(ray_client, minilm).index(scifact_slice, tmp_path)
    [partial] = (tmp_path / "embeddings").glob("*.partial")
    finished = sorted(int(p.stem) for p in partial.glob("[0-9]*.json"))
    assert 2 not in finished and finished  # the dead worker's shard is missing, the others' are kept
    assert all((partial / f"{n:06d}.npy").is_file() for n in finished)
    monkeypatch.delenv(KILL_HOOK)
    caplog.set_level(logging.INFO, logger="rankbench.harness.embeddings")
    again = OnRay(ray_client, minilm)
    again.index(scifact_slice, tmp_path)
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("encoded ")]
    assert line == f"encoded {DOCS // SHARD - len(finished)} shards, {len(finished)} kept from an earlier run"
    assert not partial.exists() and len(again.embeddings.docids) == DOCS
    assert again.embeddings.docids == [d.docid for d in scifact_slice]


@pytest.mark.slow
def test_workers_no_node_can_host_are_refused(ray_client: RayHead, scifact_slice, minilm, tmp_path: Path):
    with pytest.raises(ConfigError, match=re.escape("retriever.ray.num_gpus=1: no node of the Ray cluster")):
        OnRay(ray_client, minilm, num_gpus=1).index(scifact_slice, tmp_path)  # the head has no GPU


def test_bad_settings_name_the_key(monkeypatch):
    for kwargs, key in (
        ({"distributed": "spark"}, "retriever.distributed"),
        ({"distributed": "ray", "ray": {"workers": 0}}, "retriever.ray.workers"),
        ({"distributed": "ray", "ray": {"num_gpus": -1}}, "retriever.ray.num_gpus"),
        ({"distributed": "ray", "ray": {"wrokers": 2}}, "retriever.ray has unknown keys"),
    ):
        with pytest.raises(ConfigError, match=re.escape(key)):
            Dense(model=MINILM, **kwargs)
    Dense(model=MINILM, distributed="ray", ray={"workers": 3})  # accepted; Ray starts only when a shard is missing
    monkeypatch.delitem(sys.modules, "rankbench.retrievers.ray_encoding", raising=False)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    with pytest.raises(ConfigError, match=re.escape("pip install -e '.[ray]'")):
        Dense(model=MINILM, distributed="ray")


def test_where_a_corpus_is_encoded_is_not_part_of_a_run_identity(make_cfg):
    data = SimpleNamespace(fingerprint="scifact")  # all config_hash reads of a dataset
    here = make_cfg("retriever=dense")
    there = make_cfg(
        "retriever=dense", "retriever.distributed=ray", "retriever.ray.workers=8", "retriever.ray.num_gpus=1"
    )
    assert config_hash(here, data) == config_hash(there, data)
    assert resolved(here.retriever) == resolved(there.retriever)  # the first-stage cache key's part
    assert config_hash(make_cfg("retriever=dense", "retriever.hits=10"), data) != config_hash(here, data)


def test_ray_cluster_preset_gives_no_object_store_memory_to_a_cluster(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    cfg = compose(["hydra/launcher=ray_cluster"], return_hydra_config=True)
    init = cfg.hydra.launcher.ray.init
    init.setdefault("object_store_memory", 78643200)  # what hydra_ray_launcher._core.launch does before ray.init
    assert OmegaConf.to_container(init, resolve=True) == {"address": "127.0.0.1:6379", "object_store_memory": None}
