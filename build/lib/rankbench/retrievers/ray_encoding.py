"""Corpus shards encoded by a pool of Ray actors (``retriever.distributed=ray``).

Each actor builds the encoder once, from the same settings as the driver's, and turns a shard's
texts into vectors; the driver saves each shard as it arrives (harness/embeddings.py), so the
cache entry is the one a single-process run writes. Only the driver touches the cache folder,
except for an ONNX export, which each worker makes in its own ``cache_dir``.

A worker that dies is not restarted (a shard that kills one would kill the next): the run stops
after saving the shards other workers finish, and a rerun encodes only the missing ones.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from itertools import chain, islice
from typing import Any

import numpy as np
import ray
from ray.exceptions import RayActorError
from ray.util import ActorPool
from tqdm import tqdm

from rankbench.harness.embeddings import Shard, ShardEncoding
from rankbench.harness.errors import ConfigError, RankbenchError
from rankbench.retrievers.encoder import Encoder

log = logging.getLogger(__name__)

# Test hook: a worker given this shard number exits at once, as a crashed node would (tests/test_ray.py).
KILL_HOOK = "RANKBENCH_TEST_KILL_WORKER_AT_SHARD"
SETTINGS = {"address": None, "workers": 2, "num_cpus": 1, "num_gpus": 0}


class RayWorkerError(RankbenchError):
    """A Ray worker could not build the encoder, or died mid-encode (the shards finished so far are saved)."""


def ray_settings(given: dict[str, Any] | None) -> dict[str, Any]:
    """``retriever.ray`` with defaults, refused with the key at fault when it cannot work."""
    settings = {**SETTINGS, **dict(given or {})}
    if unknown := sorted(set(settings) - set(SETTINGS)):
        raise ConfigError(f"retriever.ray has unknown keys {unknown}; known: {sorted(SETTINGS)}")
    if not isinstance(settings["workers"], int) or settings["workers"] < 1:
        raise ConfigError(f"retriever.ray.workers must be an integer >= 1, got {settings['workers']!r}")
    for key in ("num_cpus", "num_gpus"):
        if not isinstance(settings[key], int | float) or settings[key] < 0:
            raise ConfigError(f"retriever.ray.{key} must be a number >= 0, got {settings[key]!r}")
    return settings


@ray.remote(max_restarts=0, max_task_retries=0)
class ShardEncoder:
    """One worker: the encoder, built once, and the shards it is handed."""

    def __init__(self, build: Callable[[], Encoder], kill_at: int | None):
        self.encoder, self.kill_at = build(), kill_at

    def identity(self) -> tuple[dict, int]:
        return self.encoder.identity, self.encoder.dim

    def encode(self, shard: Shard, batch_size: int) -> tuple[int, np.ndarray]:
        number, texts = shard
        if number == self.kill_at:
            os._exit(1)
        return number, self.encoder.encode(texts, batch_size, f"encode shard {number + 1}")


def ray_shards(
    build: Callable[[], Encoder], driver: Encoder, settings: dict[str, Any], batch_size: int
) -> ShardEncoding:
    """A ``ShardEncoding`` for harness/embeddings.py: Ray joins (or starts) a cluster only if a shard is missing."""

    def encode(shards: Iterator[Shard], total: int | None) -> Iterator[tuple[int, np.ndarray]]:
        first = next(shards, None)
        if first is None:
            return
        started = not ray.is_initialized()
        if started:
            ray.init(address=settings["address"], log_to_driver=False)
        try:
            pool = _pool(build, driver, settings)
            yield from _run(pool, chain([first], shards), total, settings["workers"], batch_size)
        finally:
            if started:
                ray.shutdown()

    return encode


def _pool(build: Callable[[], Encoder], driver: Encoder, settings: dict[str, Any]) -> ActorPool:
    """The workers, each checked to compute what the driver's cache key says it computes."""
    _check_fits(settings)
    kill_at = int(os.environ[KILL_HOOK]) if KILL_HOOK in os.environ else None
    options = {"num_cpus": settings["num_cpus"], "num_gpus": settings["num_gpus"]}
    actors = [ShardEncoder.options(**options).remote(build, kill_at) for _ in range(settings["workers"])]
    try:
        identities = ray.get([a.identity.remote() for a in actors])
    except RayActorError as e:
        raise RayWorkerError(
            f"a Ray worker could not build the encoder ({_gist(e)}): every node needs this rankbench code "
            "importable (installed in its .venv from the same checkout) and the model available offline"
        ) from e
    for identity, dim in identities:
        if (identity, dim) != (driver.identity, driver.dim):
            raise ConfigError(
                f"a Ray worker encodes with {identity} (dim {dim}) but this machine with {driver.identity} "
                f"(dim {driver.dim}): set retriever.dtype (float32, bfloat16 or int8) so every machine computes alike"
            )
    return ActorPool(actors)


def _check_fits(settings: dict[str, Any]) -> None:
    """Refuse settings no node can host: the actors would wait for resources forever."""
    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    for key, resource in (("num_cpus", "CPU"), ("num_gpus", "GPU")):
        if settings[key] and not any(node.get(resource, 0) >= settings[key] for node in nodes):
            raise ConfigError(
                f"retriever.ray.{key}={settings[key]}: no node of the Ray cluster has that many {resource}s"
            )


def _run(
    pool: ActorPool, shards: Iterator[Shard], total: int | None, workers: int, batch_size: int
) -> Iterator[tuple[int, np.ndarray]]:
    """Keep every worker busy with one shard (texts of at most ``workers`` shards are in flight) and yield
    each result as it comes; after a worker dies, collect what the others finish, then stop."""

    def submit(shard: Shard) -> None:
        pool.submit(lambda actor, s: actor.encode.remote(s, batch_size), shard)

    for shard in islice(shards, workers):
        submit(shard)
    lost: RayActorError | None = None
    with tqdm(total=total, unit="shard", desc="encode corpus on Ray") as bar:
        while pool.has_next():
            try:
                result = pool.get_next_unordered()
            except RayActorError as e:
                lost = lost or e
                continue
            yield result
            bar.update()
            if lost is None and (shard := next(shards, None)) is not None:
                submit(shard)
    if lost is not None:
        raise RayWorkerError(
            f"a Ray worker died while encoding ({_gist(lost)}); "
            "every shard finished so far is saved: rerun the same command to encode only the missing ones"
        )


def _gist(error: Exception) -> str:
    """The last line of Ray's many-line error: the cause (an import error, the worker's exit detail)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[-1] if lines else ''}"
