"""Training checkpoints shared by the trainers (rankbench.rerankers.train, rankbench.retrievers.train_generative).

A resumed run must equal an uninterrupted one, so a checkpoint carries the RNG states of
Python, numpy and torch beside the weights, and is written under a temporary name and renamed
so that a kill mid-write leaves the previous checkpoint intact. It also carries the wall-clock
seconds spent so far over all sessions (``training.json`` reports them; a time budget does not read
them: ``--max-minutes`` pauses each session on its own, see ``rankbench.harness.training``), and one
entry per session (steps, seconds and the CPU it ran on), so a model trained over several sittings
or machines says so.
"""

from __future__ import annotations

import logging
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rankbench.harness.errors import ConfigError
from rankbench.harness.machine import cpu

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
    """One training's checkpoint file: resume from it and save to it.

    ``parts`` are the objects with ``state_dict``/``load_state_dict`` (model, optimizer, scheduler);
    ``state`` is the trainer's own progress (``step``, ``wall_s``, ``sessions`` and whatever lists it
    keeps), saved and restored whole. ``config`` (the learned settings, dtype included) and ``inputs`` (digests of
    the base weights and the data) are the training's identity: a resume under another is refused,
    naming what differs, since it would mix two trainings into one model.
    """

    def __init__(
        self,
        path: Path,
        config: dict[str, Any],
        inputs: dict[str, Any],
        parts: dict[str, Any],
        state: dict[str, Any],
        started: float,
    ):
        self.path, self.config, self.inputs, self.parts, self.state = path, config, inputs, parts, state
        self._clock = started  # when this session's uncounted time began
        path.parent.mkdir(parents=True, exist_ok=True)

    def resume(self) -> None:
        """Continue where the file left off, if there is one (refused when the identity changed), and
        open this session's entry in ``state["sessions"]``."""
        if self.path.is_file():
            self._load()
        step = self.state["step"]
        self.state.setdefault("sessions", []).append({"from_step": step, "to_step": step, "wall_s": 0.0, **cpu()})

    def _load(self) -> None:
        saved = torch.load(self.path, weights_only=False)
        settings = differences(saved["config"], self.config, flags=True)
        inputs = differences(saved.get("inputs", {}), self.inputs, flags=False)
        if settings or inputs:
            raise ConfigError(
                f"{self.path} was written with other settings ({'; '.join(settings + inputs)}): resuming would mix "
                "two trainings. Rerun with the checkpoint's settings, or use another --out"
            )
        for name, part in self.parts.items():
            part.load_state_dict(saved[name])
        restore_rng(saved["rng"])
        self.state.update({k: saved[k] for k in self.state if k in saved})  # older checkpoints lack sessions
        log.info("resuming %s at step %d", self.path, self.state["step"])

    def save(self, step: int) -> None:
        now = time.perf_counter()
        self.state["step"] = step
        self.state["wall_s"] += now - self._clock
        session = self.state["sessions"][-1]
        session["to_step"], session["wall_s"] = step, round(session["wall_s"] + now - self._clock, 1)
        self._clock = now
        snapshot = {name: part.state_dict() for name, part in self.parts.items()}
        identity = {"config": self.config, "inputs": self.inputs}
        save_checkpoint(self.path, snapshot | identity | {"rng": rng_state(), **self.state})


def differences(saved: dict[str, Any], now: dict[str, Any], flags: bool) -> list[str]:
    """``--dtype: 'float32' in the checkpoint, 'bfloat16' now``, one per differing key (``flags``: keys
    are settings, named as their command-line flags)."""
    keys = sorted(k for k in {*saved, *now} if saved.get(k) != now.get(k))
    name = (lambda k: "--" + k.replace("_", "-")) if flags else str
    return [f"{name(k)}: {saved.get(k)!r} in the checkpoint, {now.get(k)!r} now" for k in keys]
