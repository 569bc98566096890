"""Train a generative retriever for one corpus: ``python -m retrievers.train_generative --out runs/models/gen``.

A generative retriever memorises its corpus: the model learns to spell each document's id
from the document itself (indexing examples: title + text), from pseudo-queries cut from it
(its first sentence, its title, ``spans`` random word spans; seeded) and, when the dataset is a
train split (``dataset=scifact-train``), from the judged train queries. Test qrels are never
trained on. A held-out slice (``eval_size`` train queries when there are any, else one unseen
random span per document) reports Hits@1/Hits@10 under constrained beam search as training goes.

Checkpoints, resume and budgets follow ``rankbench.rerankers.train``: every ``checkpoint_every`` steps the
model, optimiser, scheduler, RNG states and step go atomically to ``<out>/checkpoint/state.pt``;
rerunning the same command continues there (other learned settings are refused); batches are a
pure function of (seed, epoch). ``max_minutes`` bounds all sessions together, ``max_steps`` stops
early; either way the model folder and ``training.json`` are written.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import re
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from tqdm import tqdm

from rankbench.harness.cache import write_text_atomic
from rankbench.harness.checkpoint import Checkpoint
from rankbench.harness.compute import autocast, compute_dtype, dtype_name
from rankbench.harness.datasets import Dataset, load_dataset
from rankbench.harness.errors import ConfigError
from rankbench.harness.models import resolve_model, weights_digest
from rankbench.harness.recipe import parse_with_recipe
from rankbench.harness.signals import resumable
from rankbench.harness.types import Doc
from rankbench.retrievers.docids import DocIdMap, build_docids, scheme_settings
from rankbench.retrievers.generative_model import WEIGHTS_FILE, GenerativeRetriever

log = logging.getLogger(__name__)

PROJECT = Path(__file__).resolve().parent.parent
RUNTIME = {"out", "max_minutes", "max_steps", "checkpoint_every", "eval_every", "threads", "cache_dir", "data_root"}


@dataclass
class TrainConfig:
    out: str
    base: str = "sentence-transformers/all-MiniLM-L6-v2"
    init: str = "pretrained"  # pretrained: the base's weights | scratch: its shape and tokenizer only
    dataset: str = "scifact-train"
    overrides: list[str] = field(default_factory=list)  # extra Hydra overrides, e.g. dataset.path=...
    docids: str = "semantic"
    k: int = 10  # semantic: clusters per level
    max_leaf: int | None = None  # semantic: largest cluster numbered directly (default k)
    max_depth: int = 8  # semantic: levels, the leaf position included
    position_aware: bool = True  # NCI: (level, value) pairs are distinct tokens
    spans: int = 2  # random-span pseudo-queries per document
    span_words: int = 12
    train_queries: bool | None = None  # None: use the judged queries when the dataset's split is train
    query_repeats: int = 1  # the only query-shaped inputs: each judged (query, document) pair this often
    eval_size: int = 100
    max_length: int = 64
    batch_size: int = 32
    bucket: int = 100  # batches cut from one length-sorted run (1: plain shuffle)
    epochs: float = 10.0
    lr: float = 1e-4  # encoder
    decoder_lr: float = 1e-3  # fresh decoder: it starts from nothing
    weight_decay: float = 0.01
    warmup: float = 0.05
    clip: float = 1.0
    decoder_layers: int = 2
    freeze_word_embeddings: bool = True  # half the encoder's weights; updating them costs ~10% of a step
    seed: int = 13
    dtype: str = "auto"
    threads: int = 2
    checkpoint_every: int = 100
    eval_every: int = 0  # 0: evaluate only at the end
    max_minutes: float | None = None
    max_steps: int | None = None
    cache_dir: str = "runs/cache"
    data_root: str | None = os.environ.get("RANKBENCH_DATA_ROOT")

    def learned(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in RUNTIME}


@dataclass(frozen=True)
class Example:
    text: str
    target: int  # row of the id map
    source: str  # indexing | first_sentence | title | span | query


def load_data(cfg: TrainConfig) -> tuple[Dataset, bool]:
    """The dataset and whether its judged queries may be trained on (only a train split's)."""
    overrides = [f"dataset={cfg.dataset}", f"data_root={cfg.data_root or 'null'}", *cfg.overrides]
    with initialize_config_dir(config_dir=str(PROJECT / "conf"), version_base="1.3"):
        hcfg = compose("config", overrides=overrides)
    is_train = hcfg.dataset.split == "train"
    if cfg.train_queries and not is_train:
        raise ConfigError(f"--train-queries: dataset {cfg.dataset} has split {hcfg.dataset.split!r}, not train")
    dataset = load_dataset(hcfg.dataset, hcfg.data_root, Path(cfg.cache_dir))
    return dataset, is_train if cfg.train_queries is None else cfg.train_queries


def doc_text(doc: Doc) -> str:
    return f"{doc.title} {doc.text}".strip()


def first_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?])\s+", text.strip(), maxsplit=1)[0]


def random_span(words: list[str], length: int, rng: random.Random) -> str:
    start = rng.randrange(max(1, len(words) - length + 1))
    return " ".join(words[start : start + length])


def document_examples(docs: list[Doc], cfg: TrainConfig) -> tuple[list[Example], list[Example]]:
    """(training examples, held-out spans): indexing text, first sentence, title, random spans; seeded."""
    train, held_out = [], []
    for row, doc in enumerate(docs):
        rng = random.Random(f"{cfg.seed}-{doc.docid}")
        words = doc.text.split()
        train.append(Example(doc_text(doc), row, "indexing"))
        if (first := first_sentence(doc.text)) and first != doc.text.strip():
            train.append(Example(first, row, "first_sentence"))
        if doc.title.strip():
            train.append(Example(doc.title, row, "title"))
        if words:
            train += [Example(random_span(words, cfg.span_words, rng), row, "span") for _ in range(cfg.spans)]
            held_out.append(Example(random_span(words, cfg.span_words, rng), row, "span"))
    return train, held_out


def query_examples(dataset: Dataset, rows: dict[str, int]) -> list[Example]:
    """One example per (judged query, relevant document)."""
    text = {q.qid: q.text for q in dataset.queries}
    return [
        Example(text[qid], rows[docid], "query")
        for qid, judged in dataset.qrels.items()
        for docid, grade in judged.items()
        if grade > 0 and docid in rows and text.get(qid, "").strip()
    ]


def split_examples(
    dataset: Dataset, docids: DocIdMap, use_queries: bool, cfg: TrainConfig
) -> tuple[list[Example], list[Example]]:
    """(train, held-out): held-out train queries when they are used, else unseen random spans."""
    docs_by_id = dataset.corpus.get_many(set(docids.docids))
    docs = [docs_by_id[d] for d in docids.docids]
    train, spans = document_examples(docs, cfg)
    random.Random(f"{cfg.seed}-held-out").shuffle(spans)
    if not use_queries:
        return train, spans[: cfg.eval_size]
    queries = query_examples(dataset, {d: i for i, d in enumerate(docids.docids)})
    texts = sorted({e.text for e in queries})
    random.Random(f"{cfg.seed}-held-out").shuffle(texts)
    held = set(texts[: cfg.eval_size])
    kept = [e for e in queries if e.text not in held]
    return train + kept * cfg.query_repeats, [e for e in queries if e.text in held]


class Batches:
    """The batch of each step: a pure function of (seed, step), so a resume sees the same batches.

    With ``bucket`` > 1, each run of ``bucket`` batches is cut from shuffled examples sorted by
    length, and the batches are shuffled again: a batch of short pseudo-queries then pads to their
    own length instead of a 64-token document's (on SciFact, 0.85 -> 0.68 s per 32-example step here).
    """

    def __init__(self, train: list[Example], batch_size: int, seed: int, bucket: int):
        self.train, self.batch_size, self.seed, self.bucket = train, batch_size, seed, bucket
        self.per_epoch = math.ceil(len(train) / batch_size)
        self._epoch, self._batches = -1, []

    def at(self, step: int) -> tuple[int, list[Example]]:
        epoch, position = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self._epoch, self._batches = epoch, self._cut(epoch)
        return epoch, self._batches[position]

    def _cut(self, epoch: int) -> list[list[Example]]:
        rng = random.Random(f"{self.seed}-{epoch}")
        order = list(self.train)
        rng.shuffle(order)
        size, chunk = self.batch_size, self.batch_size * max(1, self.bucket)
        batches = []
        for start in range(0, len(order), chunk):
            group = order[start : start + chunk]
            if self.bucket > 1:
                group.sort(key=lambda e: len(e.text))
            batches += [group[i : i + size] for i in range(0, len(group), size)]
        if self.bucket > 1:
            rng.shuffle(batches)
        return batches


def hits(model: GenerativeRetriever, examples: list[Example], beam_size: int = 10) -> dict[str, float]:
    """Hits@1 and Hits@10 under constrained beam search (a text may have several relevant documents)."""
    if not examples:
        return {}
    relevant: dict[str, set[int]] = {}
    for e in examples:
        relevant.setdefault(e.text, set()).add(e.target)
    texts = list(relevant)
    found = model.search(texts, min(10, model.trie.size), max(beam_size, min(10, model.trie.size)))
    at = {n: sum(bool({d for d, _ in f[:n]} & relevant[t]) for t, f in zip(texts, found, strict=True)) for n in (1, 10)}
    return {"hits@1": at[1] / len(texts), "hits@10": at[10] / len(texts), "texts": len(texts)}


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train (or resume) and save the model folder; returns what training.json records."""
    from transformers import get_linear_schedule_with_warmup

    session_start = time.perf_counter()
    if cfg.init not in ("pretrained", "scratch"):
        raise ConfigError(f"--init must be pretrained or scratch, got {cfg.init!r}")
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)

    dataset, use_queries = load_data(cfg)
    settings = scheme_settings(cfg.docids, cfg.k, cfg.max_leaf, cfg.max_depth)
    docids = build_docids(dataset.corpus, cfg.docids, settings, cfg.seed, Path(cfg.cache_dir))
    train_set, held_out = split_examples(dataset, docids, use_queries, cfg)
    batches = Batches(train_set, cfg.batch_size, cfg.seed, cfg.bucket)
    total = max(1, round(cfg.epochs * batches.per_epoch))
    stop_at = min(total, cfg.max_steps) if cfg.max_steps else total

    base = resolve_model(cfg.base)
    torch.manual_seed(cfg.seed)  # the fresh decoder's initial weights
    arch = {"max_length": cfg.max_length, "decoder_layers": cfg.decoder_layers}
    model = GenerativeRetriever.fresh(base, cfg.base, docids, cfg.position_aware, cfg.init == "pretrained", **arch)
    dtype = compute_dtype(cfg.dtype)
    if cfg.freeze_word_embeddings:
        model.encoder.get_input_embeddings().requires_grad_(False)
    encoder_params = [p for p in model.encoder.parameters() if p.requires_grad]
    decoder_params = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    optimizer = torch.optim.AdamW(
        [{"params": encoder_params}, {"params": decoder_params, "lr": cfg.decoder_lr}],
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
    )
    scheduler = get_linear_schedule_with_warmup(optimizer, round(cfg.warmup * total), total)

    state: dict[str, Any] = {"step": 0, "wall_s": 0.0, "losses": [], "evals": []}
    parts = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
    checkpoint = Checkpoint(out / "checkpoint" / "state.pt", cfg.learned(), parts, state, session_start)
    checkpoint.resume()

    def evaluate(step: int) -> None:
        state["evals"].append({"step": step, **hits(model, held_out)})
        log.info("held-out at step %d: %s", step, state["evals"][-1])

    model.train()
    step = state["step"]
    deadline = checkpoint.deadline(cfg.max_minutes)
    running = None
    with tqdm(total=stop_at, initial=step, unit="step", desc="train") as bar:
        while step < stop_at and time.perf_counter() < deadline:
            epoch, batch = batches.at(step)
            with autocast(dtype):
                loss = model.loss([e.text for e in batch], [e.target for e in batch])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            state["losses"].append(loss.item())
            running = loss.item() if running is None else 0.9 * running + 0.1 * loss.item()
            bar.set_postfix(loss=f"{running:.4f}", epoch=epoch)
            bar.update()
            if cfg.eval_every and step % cfg.eval_every == 0 and step < stop_at:
                evaluate(step)
            if step % cfg.checkpoint_every == 0:
                checkpoint.save(step)
    evaluate(step)
    checkpoint.save(step)
    model.save(out)
    record = training_record(cfg, dataset, docids, base, train_set, held_out, state, total, dtype)
    write_text_atomic(out / "training.json", json.dumps(record, indent=2) + "\n")
    log.info("saved %s (step %d of %d, %.0f s)", out, step, total, state["wall_s"])
    return record


def training_record(cfg, dataset, docids, base, train_set, held_out, state, total, dtype) -> dict[str, Any]:
    """What training.json records: data, id scheme, corpus fingerprint, seed, time, losses, evaluations."""
    tail = state["losses"][-20:]
    sources: dict[str, int] = {}
    for e in train_set:
        sources[e.source] = sources.get(e.source, 0) + 1
    return {
        "base_model": cfg.base,
        "base_digest": weights_digest(base),
        "dataset": cfg.dataset,
        "dataset_source": dataset.source,
        "corpus_fingerprint": dataset.corpus.fingerprint,
        "documents": len(docids.docids),
        "docids": {"scheme": docids.scheme, "settings": docids.settings, "digest": docids.digest},
        "id_length_max": max(map(len, docids.ids)),
        "train_examples": sources,
        "held_out": {"examples": len(held_out), "source": held_out[0].source if held_out else None},
        "hyperparameters": cfg.learned(),
        "seed": cfg.seed,
        "compute_dtype": dtype_name(dtype),
        "steps": state["step"],
        "total_steps": total,
        "complete": state["step"] >= total,
        "wall_s": round(state["wall_s"], 1),
        "final_loss": sum(tail) / len(tail) if tail else None,
        "evals": state["evals"],
        "losses": [round(v, 5) for v in state["losses"]],
        "model_bytes": (Path(cfg.out) / WEIGHTS_FILE).stat().st_size,
        "command": shlex.join(
            [Path(sys.executable).name, "-m", "rankbench.retrievers.train_generative", *sys.argv[1:]]
        ),
        "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__},
    }


def _flag_type(name: str, value: Any):
    """argparse type of a TrainConfig field (None defaults say nothing about the type)."""
    if name == "train_queries" or isinstance(value, bool):
        return lambda s: {"true": True, "false": False, "none": None}[s.lower()]
    return {"max_minutes": float, "max_leaf": int, "max_steps": int, "data_root": str}.get(name, type(value))


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    parser = argparse.ArgumentParser(prog="python -m retrievers.train_generative", description=__doc__.split("\n")[0])
    for name, value in asdict(TrainConfig(out="")).items():
        flag = "--" + name.replace("_", "-")
        if name == "out":
            parser.add_argument(flag, required=True, help="model folder to write (and resume)")
        elif name == "overrides":
            parser.add_argument(flag, nargs="*", default=[], help="Hydra overrides for the dataset, e.g. dataset.path=")
        else:
            parser.add_argument(flag, type=_flag_type(name, value), default=value, help=f"default {value}")
    return TrainConfig(**vars(parse_with_recipe(parser, argv)))


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = parse_args(argv)
    with resumable(f"the last checkpoint is kept in {args.out}/checkpoint"):
        record = train(args)
    print(json.dumps({k: record[k] for k in ("steps", "total_steps", "wall_s", "final_loss", "evals")}, indent=2))


if __name__ == "__main__":
    main()
