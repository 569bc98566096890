"""Training checkpoints shared by the trainers (rankbench.rerankers.train, rankbench.retrievers.train_generative).

A resumed run must equal an uninterrupted one, so a checkpoint carries the RNG states of
Python, numpy and torch beside the weights, and is written under a temporary name and renamed
so that a kill mid-write leaves the previous checkpoint intact. The time budget covers every
session of one training, so the checkpoint also carries the wall-clock seconds spent so far.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rankbench.harness.errors import ConfigError

log = logging.getLogger(__name__)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


class Checkpoint:
    """One training's checkpoint file: resume from it, save to it, and the deadline of its time budget.

    ``parts`` are the objects with ``state_dict``/``load_state_dict`` (model, optimizer, scheduler);
    ``state`` is the trainer's own progress (``step``, ``wall_s`` and whatever lists it keeps), saved
    and restored whole; ``config`` holds the learned settings, and a resume with others is refused.
    """

    def __init__(
        self, path: Path, config: dict[str, Any], parts: dict[str, Any], state: dict[str, Any], started: float
    ):
        self.path, self.config, self.parts, self.state = path, config, parts, state
        self._clock = started  # when this session's uncounted time began
        path.parent.mkdir(parents=True, exist_ok=True)

    def resume(self) -> None:
        """Continue where the file left off, if there is one; refuse it when the settings changed."""
        if not self.path.is_file():
            return
        saved = torch.load(self.path, weights_only=False)
        if saved["config"] != self.config:
            changed = sorted(k for k in self.config if saved["config"].get(k) != self.config[k])
            raise ConfigError(f"{self.path} was written with other settings ({', '.join(changed)}); use another --out")
        for name, part in self.parts.items():
            part.load_state_dict(saved[name])
        restore_rng(saved["rng"])
        self.state.update({k: saved[k] for k in self.state})
        log.info("resuming %s at step %d", self.path, self.state["step"])

    def save(self, step: int) -> None:
        now = time.perf_counter()
        self.state["step"] = step
        self.state["wall_s"] += now - self._clock
        self._clock = now
        snapshot = {name: part.state_dict() for name, part in self.parts.items()}
        save_checkpoint(self.path, snapshot | {"rng": rng_state(), "config": self.config, **self.state})

    def deadline(self, max_minutes: float | None) -> float:
        """The ``perf_counter`` time at which the budget of all sessions together runs out."""
        if not max_minutes:
            return math.inf
        return self._clock + max_minutes * 60 - self.state["wall_s"]
