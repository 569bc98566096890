"""One training scaffold for the trainers (``rankbench.rerankers.train``, ``rankbench.retrievers.train_generative``).

A trainer brings only what is its own: its data (a ``Batches`` schedule), its model, its loss and
its evaluation, as a ``Trainer``. Everything else is here once, so the trainers cannot drift apart
in what a command line, a resume, a pause or a ``training.json`` means:

- the command line: one flag per ``TrainConfig`` field, with ``--recipe FILE.yaml`` (``harness.recipe``);
- the batches of each step, a pure function of (seed, step), so a resumed run sees the same ones;
- AdamW with linear warm-up and decay, gradient clipping, and the loss in the recipe's ``dtype``:
  float32 unless it says bfloat16 (bf16 autocast, ``harness.compute``), never chosen by the CPU;
- every ``checkpoint_every`` steps the model, optimiser, scheduler, RNG states and step, written
  atomically (``harness.checkpoint``); rerunning the same command continues there, and refuses other
  learned settings, another dtype, base model or data;
- a recipe is work (steps or epochs, data, seed, dtype), never wall time: ``max_minutes`` only pauses
  one session (a checkpoint, an incomplete model folder, exit status ``PAUSED``) and the next run of
  the same command continues with a budget of its own; ``max_steps`` stops early on purpose. Either
  way the model folder is written with ``"complete": false`` in ``training.json``, which the
  cross-encoder and generative retriever flag when they load it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import random
import shlex
import sys
import time
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import torch
from omegaconf import DictConfig
from tqdm import tqdm

from rankbench.harness.cache import write_text_atomic
from rankbench.harness.checkpoint import Checkpoint
from rankbench.harness.compute import compute_dtype, dtype_name
from rankbench.harness.config import compose
from rankbench.harness.errors import ConfigError
from rankbench.harness.recipe import parse_with_recipe
from rankbench.harness.signals import resumable

log = logging.getLogger(__name__)

T = TypeVar("T")
PAUSED = 75  # exit status of a session paused by --max-minutes (EX_TEMPFAIL: rerun to continue)
TRAINING_DTYPES = ("float32", "bfloat16")
LOSS_TAIL = 20  # final_loss: the mean of the last steps' losses, less noisy than the last one


@dataclass
class TrainConfig:
    """The settings every trainer has; a trainer's config adds its own fields and may change defaults.

    ``RUNTIME`` names the settings that do not change what is learned, so a resume accepts new values.
    """

    RUNTIME: ClassVar[frozenset[str]] = frozenset(
        {"out", "max_minutes", "max_steps", "checkpoint_every", "threads", "cache_dir", "data_root"}
    )

    out: str
    base: str = "sentence-transformers/all-MiniLM-L6-v2"
    dataset: str = "scifact-train"
    overrides: list[str] = field(default_factory=list)  # extra Hydra overrides, e.g. dataset.path=...
    epochs: float = 2.0
    lr: float = 3e-5
    weight_decay: float = 0.01
    warmup: float = 0.1
    clip: float = 1.0
    seed: int = 13
    dtype: str = "float32"  # or bfloat16; never auto (training_dtype)
    threads: int = 2
    checkpoint_every: int = 50
    max_minutes: float | None = None
    max_steps: int | None = None
    cache_dir: str = "runs/cache"
    data_root: str | None = os.environ.get("RANKBENCH_DATA_ROOT")

    def learned(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in self.RUNTIME}

    def hydra_config(self, *overrides: str) -> DictConfig:
        """The composed run config of this training's dataset (plus the trainer's ``overrides``)."""
        return compose(
            [f"dataset={self.dataset}", *overrides, f"data_root={self.data_root or 'null'}", *self.overrides]
        )


C = TypeVar("C", bound=TrainConfig)


class Batches(Generic[T]):
    """The batch of each step: a pure function of (seed, step), so a resume sees the same batches.

    Each epoch shuffles the items with its own seed and cuts batches in order. With ``bucket`` > 1,
    each run of ``bucket`` batches is cut from shuffled items sorted by ``length``, and the batches
    are shuffled again: a batch of short items then pads to their own length instead of a long one's
    (the generative trainer's pseudo-queries on SciFact: 0.85 -> 0.68 s per 32-example step here).
    """

    def __init__(
        self, items: list[T], batch_size: int, seed: int, bucket: int = 1, length: Callable[[T], int] | None = None
    ):
        self.items, self.batch_size, self.seed, self.bucket, self.length = items, batch_size, seed, bucket, length
        self.per_epoch = math.ceil(len(items) / batch_size)
        self._epoch, self._batches = -1, []

    def at(self, step: int) -> tuple[int, list[T]]:
        """(epoch, items) of ``step``."""
        epoch, position = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self._epoch, self._batches = epoch, self._cut(epoch)
        return epoch, self._batches[position]

    def _cut(self, epoch: int) -> list[list[T]]:
        rng = random.Random(f"{self.seed}-{epoch}")
        order = list(self.items)
        rng.shuffle(order)
        size, chunk = self.batch_size, self.batch_size * max(1, self.bucket)
        batches = []
        for start in range(0, len(order), chunk):
            group = order[start : start + chunk]
            if self.bucket > 1:
                group.sort(key=self.length)
            batches += [group[i : i + size] for i in range(0, len(group), size)]
        if self.bucket > 1:
            rng.shuffle(batches)
        return batches


class Trainer(ABC):
    """One trainer's own part: its data, its model, its loss and its evaluation; ``fit`` runs the rest.

    ``fit`` calls ``data`` first, then seeds torch and calls ``build_model`` (whose result it keeps as
    ``self.model``), and ``save`` last; ``evaluations`` is the key of the evaluations in the checkpoint
    and in ``training.json``, ``module`` the command ``training.json`` records.
    """

    evaluations: ClassVar[str]
    module: ClassVar[str]
    model: torch.nn.Module

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.dtype = training_dtype(cfg.dtype)

    @property
    @abstractmethod
    def evaluate_every(self) -> int:
        """Steps between evaluations during training (0: only at the end)."""

    @abstractmethod
    def data(self) -> Batches:
        """Load the data and return the schedule of training batches."""

    @abstractmethod
    def build_model(self) -> torch.nn.Module:
        """The model to train, built after ``torch.manual_seed(cfg.seed)`` (fresh layers are seeded)."""

    def param_groups(self) -> Iterable[Any]:
        """What AdamW optimises: by default every parameter at ``cfg.lr``."""
        return self.model.parameters()

    @abstractmethod
    def loss(self, batch: list, epoch: int) -> torch.Tensor:
        """The loss of one batch (``epoch``: for anything sampled per epoch)."""

    @abstractmethod
    def evaluate(self) -> dict[str, Any] | None:
        """Held-out numbers at this point of training; None when there is nothing to evaluate on."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """``training.json``'s fields about the data and the model, before the common ones."""

    @abstractmethod
    def inputs(self) -> dict[str, str]:
        """Digests of what the model learns from beyond the settings (base weights, data); asked after
        ``build_model``. A checkpoint keeps them, so a resume on other weights or data is refused."""

    @abstractmethod
    def save(self, out: Path) -> dict[str, Any]:
        """Write the model folder; returns ``training.json``'s fields about what was written."""


def training_dtype(requested: str) -> torch.dtype:
    """The recipe's compute dtype. ``auto`` is refused: it picks bf16 on CPUs with native bf16 and float32
    elsewhere, so one recipe would train different models on different machines."""
    if requested not in TRAINING_DTYPES:
        raise ConfigError(
            f"--dtype (recipe key dtype) is {requested!r}; training takes float32 (the default) or bfloat16, "
            "never auto, which picks by CPU and would make the recipe learn a different model on another machine"
        )
    return compute_dtype(requested)


def fit(trainer: Trainer) -> dict[str, Any]:
    """Train (or resume) and save the model folder; returns what training.json records."""
    from transformers import get_linear_schedule_with_warmup

    session_start = time.perf_counter()  # a session's budget counts its loading too
    cfg = trainer.cfg
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    batches = trainer.data()
    total = max(1, round(cfg.epochs * batches.per_epoch))
    torch.manual_seed(cfg.seed)
    trainer.model = trainer.build_model()
    optimizer = torch.optim.AdamW(trainer.param_groups(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, round(cfg.warmup * total), total)
    state: dict[str, Any] = {"step": 0, "wall_s": 0.0, "sessions": [], "losses": [], trainer.evaluations: []}
    parts = {"model": trainer.model, "optimizer": optimizer, "scheduler": scheduler}
    path = out / "checkpoint" / "state.pt"
    checkpoint = Checkpoint(path, cfg.learned(), trainer.inputs(), parts, state, session_start)
    checkpoint.resume()
    stop_at = min(total, cfg.max_steps) if cfg.max_steps else total
    deadline = session_start + cfg.max_minutes * 60 if cfg.max_minutes else math.inf
    step = _steps(trainer, batches, optimizer, scheduler, checkpoint, stop_at, deadline)
    _evaluate(trainer, state, step)
    checkpoint.save(step)
    record = _record(trainer, state, total) | trainer.save(out) | _provenance(trainer)
    write_text_atomic(out / "training.json", json.dumps(record, indent=2) + "\n")
    log.info("saved %s (step %d of %d, %.0f s)", out, step, total, state["wall_s"])
    return record


def _steps(
    trainer: Trainer, batches: Batches, optimizer, scheduler, checkpoint: Checkpoint, stop_at: int, deadline: float
) -> int:
    """Optimiser steps until ``stop_at`` or this session's ``deadline`` (``perf_counter`` time); returns the
    step reached. A session takes at least one step, so rerunning after pauses always gets further."""
    cfg, state = trainer.cfg, checkpoint.state
    trainer.model.train()
    step = first = state["step"]
    running = None
    with tqdm(total=stop_at, initial=step, unit="step", desc="train") as bar:
        while step < stop_at and (step == first or time.perf_counter() < deadline):
            epoch, batch = batches.at(step)
            loss = trainer.loss(batch, epoch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), cfg.clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            state["losses"].append(loss.item())
            running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
            bar.set_postfix(loss=f"{running:.4f}", epoch=epoch)
            bar.update()
            if trainer.evaluate_every and step % trainer.evaluate_every == 0 and step < stop_at:
                _evaluate(trainer, state, step)
            if step % cfg.checkpoint_every == 0:
                checkpoint.save(step)
    return step


def _evaluate(trainer: Trainer, state: dict[str, Any], step: int) -> None:
    """Append the trainer's evaluation at ``step`` to its list in ``state`` (saved with the checkpoint)."""
    result = trainer.evaluate()
    if result is not None:
        state[trainer.evaluations].append({"step": step, **result})
        log.info("%s at step %d: %s", trainer.evaluations, step, state[trainer.evaluations][-1])


def _record(trainer: Trainer, state: dict[str, Any], total: int) -> dict[str, Any]:
    """``training.json``: the trainer's description of data and model, then settings, progress and losses."""
    cfg, tail = trainer.cfg, state["losses"][-LOSS_TAIL:]
    return trainer.describe() | {
        "hyperparameters": cfg.learned(),
        "seed": cfg.seed,
        "compute_dtype": dtype_name(trainer.dtype),
        "steps": state["step"],
        "total_steps": total,
        "complete": state["step"] >= total,
        "wall_s": round(state["wall_s"], 1),
        "sessions": state["sessions"],
        "final_loss": sum(tail) / len(tail) if tail else None,
        trainer.evaluations: state[trainer.evaluations],
        "losses": [round(v, 5) for v in state["losses"]],
    }


def _provenance(trainer: Trainer) -> dict[str, Any]:
    """The command that reproduces this training, and the library versions it ran with."""
    command = [Path(sys.executable).name, "-m", trainer.module, *sys.argv[1:]]
    versions = {"torch": torch.__version__, "transformers": __import__("transformers").__version__}
    return {"command": shlex.join(command), "versions": versions}


def parse_config(config: type[C], prog: str, description: str, argv: list[str] | None = None) -> C:
    """``config`` from the command line: one ``--flag`` per field (``max_length`` -> ``--max-length``)
    over the defaults of a ``--recipe`` file, if given."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    hints, defaults = typing.get_type_hints(config), config(out="")
    for f in dataclasses.fields(config):
        flag = "--" + f.name.replace("_", "-")
        if f.name == "out":
            parser.add_argument(flag, required=True, help="model folder to write (and resume)")
        elif f.name == "overrides":
            parser.add_argument(flag, nargs="*", default=[], help="Hydra overrides for the dataset, e.g. dataset.path=")
        else:
            default = getattr(defaults, f.name)
            parser.add_argument(flag, type=_flag_type(hints[f.name]), default=default, help=f"default {default}")
    return config(**vars(parse_with_recipe(parser, argv)))


def _flag_type(hint: Any) -> Callable[[str], Any]:
    """How a flag of type ``hint`` parses its text; ``X | None`` parses as X (None defaults say nothing)."""
    kinds = [k for k in typing.get_args(hint) if k is not type(None)] or [hint]
    return _boolean if kinds[0] is bool else kinds[0]


def _boolean(text: str) -> bool | None:
    """true, false or none, in any case (a plain ``bool(text)`` would read "false" as True)."""
    return {"true": True, "false": False, "none": None}[text.lower()]


def main(train: Callable[[Any], dict[str, Any]], args: TrainConfig, evaluations: str) -> None:
    """Run ``train(args)`` as a command: logging on, a resumable interrupt, a summary printed at the end,
    and, when the training is not complete, what to run next; a pause exits with ``PAUSED``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    with resumable(f"the last checkpoint is kept in {args.out}/checkpoint"):
        record = train(args)
    print(json.dumps({k: record[k] for k in ("steps", "total_steps", "wall_s", "final_loss", evaluations)}, indent=2))
    if not record["complete"]:
        print(unfinished(record, args), file=sys.stderr)
        if not _stopped_by_max_steps(record, args):
            sys.exit(PAUSED)


def unfinished(record: dict[str, Any], args: TrainConfig) -> str:
    """What an incomplete session left and how to go on (``max_steps`` stops on purpose, a budget pauses)."""
    left = (
        f"step {record['steps']} of {record['total_steps']}: {args.out} holds the model so far, marked "
        f'"complete": false in training.json, and its checkpoint'
    )
    if _stopped_by_max_steps(record, args):
        return f"stopped by --max-steps {args.max_steps} at {left}; rerun without --max-steps to continue"
    return f"paused by --max-minutes {args.max_minutes:g} at {left}; rerun the same command to continue"


def _stopped_by_max_steps(record: dict[str, Any], args: TrainConfig) -> bool:
    return args.max_steps is not None and record["steps"] >= args.max_steps
