"""Train a cross-encoder from any encoder checkpoint: ``python -m rerankers.train --out runs/models/ce``.

No cross-encoder ships on this machine (docs/models.md), so the framework trains its own. A fresh
1-logit head goes on the encoder (AutoModelForSequenceClassification, num_labels=1); each step
takes ``batch_queries`` queries, each with 1 judged positive and ``negatives`` hard negatives
drawn (per epoch, from a seed) out of the framework's own BM25 top-``negatives_depth`` minus
the positives, and minimises the listwise softmax cross-entropy of the positive within its
group. AdamW with linear warm-up and decay, gradient clipping, bf16 autocast where the CPU has
it. Every ``checkpoint_every`` steps the model, optimiser, scheduler, RNG states and step are
written atomically; rerunning the same command after a kill continues from there, and the
batches and negatives are a pure function of (seed, epoch), so the resumed run equals an
uninterrupted one. The result is a Hugging Face folder (weights, tokenizer, ``training.json``)
that ``reranker.model=<folder>`` uses.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
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
from rankbench.harness.datasets import load_dataset
from rankbench.harness.errors import ConfigError
from rankbench.harness.metrics import evaluate, parse_measures
from rankbench.harness.models import resolve_model, weights_digest
from rankbench.harness.recipe import parse_with_recipe
from rankbench.harness.rerank import interpolated
from rankbench.harness.signals import resumable
from rankbench.harness.stages import first_stage_run, resolved
from rankbench.harness.types import Run
from rankbench.rerankers.cross_encoder import doc_text, pair_scores, score_pairs, tokenize_pairs
from rankbench.rerankers.negatives import Example, mine_examples, sample_group

log = logging.getLogger(__name__)

PROJECT = Path(__file__).resolve().parent.parent
# Changing these mid-way does not change what is learned, so a resume accepts new values.
RUNTIME = {"out", "max_minutes", "max_steps", "checkpoint_every", "dev_every", "threads", "cache_dir", "data_root"}


@dataclass
class TrainConfig:
    out: str
    base: str = "sentence-transformers/all-MiniLM-L6-v2"
    dataset: str = "scifact-train"
    overrides: list[str] = field(default_factory=list)  # extra Hydra overrides, e.g. dataset.path=...
    retriever: str = "bm25"
    negatives: int = 7
    negatives_depth: int = 50
    dev_queries: int = 0
    dev_depth: int = 30
    max_length: int = 256
    batch_queries: int = 4
    epochs: float = 2.0
    lr: float = 3e-5
    weight_decay: float = 0.01
    warmup: float = 0.1
    clip: float = 1.0
    # Dropout on attention probabilities sends CPU SDPA down its slow path: 2.5x the step time.
    attention_dropout: float = 0.0
    seed: int = 13
    dtype: str = "auto"
    threads: int = 2
    checkpoint_every: int = 50
    dev_every: int = 0  # 0: evaluate on the dev queries only at the end
    max_minutes: float | None = None
    max_steps: int | None = None
    cache_dir: str = "runs/cache"
    data_root: str | None = os.environ.get("RANKBENCH_DATA_ROOT")

    def learned(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in RUNTIME}


def load_training_data(cfg: TrainConfig) -> tuple[Any, Run, dict[str, Any]]:
    """The dataset, its first-stage run (from the stage cache) and that retriever's resolved config."""
    overrides = [
        f"dataset={cfg.dataset}",
        f"retriever={cfg.retriever}",
        f"data_root={cfg.data_root or 'null'}",
        *cfg.overrides,
    ]
    with initialize_config_dir(config_dir=str(PROJECT / "conf"), version_base="1.3"):
        hcfg = compose("config", overrides=overrides)
    dataset = load_dataset(hcfg.dataset, hcfg.data_root, Path(cfg.cache_dir))
    first = first_stage_run(hcfg.retriever, dataset.corpus, dataset.queries, Path(cfg.cache_dir))
    return dataset, first.run, resolved(hcfg.retriever)


def split_dev(examples: list[Example], dev_queries: int, seed: int) -> tuple[list[Example], list[Example]]:
    shuffled = list(examples)
    random.Random(f"{seed}-dev").shuffle(shuffled)
    return shuffled[dev_queries:], shuffled[:dev_queries]


def batch_at(train: list[Example], step: int, batch_queries: int, seed: int) -> tuple[int, list[Example]]:
    """(epoch, examples) of ``step``: a pure function of the seed, so a resume sees the same batches."""
    per_epoch = math.ceil(len(train) / batch_queries)
    epoch, position = divmod(step, per_epoch)
    order = list(train)
    random.Random(f"{seed}-{epoch}").shuffle(order)
    return epoch, order[position * batch_queries : (position + 1) * batch_queries]


INTERPOLATION_GRID = [round(0.1 * i, 1) for i in range(10)]


def dev_ndcg(model, tokenizer, dataset, run: Run, dev: list[Example], cfg: TrainConfig, dtype) -> dict[str, Any]:
    """nDCG@10 on held-out train queries: BM25 alone, reranked at ``dev_depth`` (tail kept), and
    reranked with each first-stage interpolation weight of the grid (so a weight is chosen on dev)."""
    queries = {q.qid: q.text for q in dataset.queries}
    qrels = {e.qid: dataset.qrels[e.qid] for e in dev}
    heads = {e.qid: run.get(e.qid, [])[: cfg.dev_depth] for e in dev}
    docs = dataset.corpus.get_many({d for head in heads.values() for d, _ in head})
    pairs = [(qid, d) for qid, head in heads.items() for d, _ in head]
    model.eval()
    flat = score_pairs(
        model,
        tokenizer,
        [queries[q] for q, _ in pairs],
        [doc_text(docs[d]) for _, d in pairs],
        cfg.max_length,
        32,
        dtype,
    )
    model.train()
    scores: dict[str, dict[str, float]] = {qid: {} for qid in heads}
    for (qid, d), s in zip(pairs, flat, strict=True):
        scores[qid][d] = s
    measure = parse_measures(["nDCG@10"])

    def ndcg(weight: float) -> float:
        reranked: Run = {}
        for qid, head in heads.items():
            final = interpolated(scores[qid], head, weight) if weight else scores[qid]
            top = sorted(final.items(), key=lambda item: -item[1])
            reranked[qid] = [(d, s + 1e6) for d, s in top] + run.get(qid, [])[cfg.dev_depth :]  # above the tail
        return evaluate(reranked, qrels, measure)[0]["nDCG@10"]

    by_weight = {w: ndcg(w) for w in INTERPOLATION_GRID}
    base = evaluate({qid: run.get(qid, []) for qid in heads}, qrels, measure)[0]["nDCG@10"]
    return {
        "dev_ndcg@10_first_stage": base,
        "dev_ndcg@10_reranked": by_weight[0.0],
        "dev_ndcg@10_by_interpolation_weight": by_weight,
        "best_interpolation_weight": max(by_weight, key=by_weight.get),
    }


def _save_model(model, tokenizer, out: Path, record: dict[str, Any]) -> None:
    """Write the HF folder beside the final location, then move each file in (a kill leaves the old one)."""
    tmp = out / f".final.tmp-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    for path in tmp.iterdir():
        os.replace(path, out / path.name)
    tmp.rmdir()
    record["model_digest"] = weights_digest(out)
    write_text_atomic(out / "training.json", json.dumps(record, indent=2) + "\n")


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train (or resume) and save the model folder; returns what training.json records."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

    session_start = time.perf_counter()
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)

    dataset, run, retriever_cfg = load_training_data(cfg)
    examples = mine_examples(run, dataset.qrels, cfg.negatives_depth)
    train_set, dev = split_dev(examples, cfg.dev_queries, cfg.seed)
    if not train_set:
        raise ConfigError(f"no training query of {cfg.dataset} has both a positive and a negative")
    per_epoch = math.ceil(len(train_set) / cfg.batch_queries)
    total = max(1, round(cfg.epochs * per_epoch))
    stop_at = min(total, cfg.max_steps) if cfg.max_steps else total
    docs = dataset.corpus.get_many({d for e in train_set for d in (*e.positives, *e.negatives)})
    query_text = {q.qid: q.text for q in dataset.queries}

    base = resolve_model(cfg.base)
    torch.manual_seed(cfg.seed)  # the fresh head's initial weights
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=1, attention_probs_dropout_prob=cfg.attention_dropout
    )
    dtype = compute_dtype(cfg.dtype)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, round(cfg.warmup * total), total)

    state: dict[str, Any] = {"step": 0, "wall_s": 0.0, "losses": [], "dev": []}
    parts = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
    checkpoint = Checkpoint(out / "checkpoint" / "state.pt", cfg.learned(), parts, state, session_start)
    checkpoint.resume()
    model.train()
    step = state["step"]
    deadline = checkpoint.deadline(cfg.max_minutes)
    running = None
    with tqdm(total=stop_at, initial=step, unit="step", desc="train") as bar:
        while step < stop_at and time.perf_counter() < deadline:
            epoch, batch = batch_at(train_set, step, cfg.batch_queries, cfg.seed)
            groups = [sample_group(e, cfg.negatives, random.Random(f"{cfg.seed}-{epoch}-{e.qid}")) for e in batch]
            queries = [query_text[e.qid] for e, group in zip(batch, groups, strict=True) for _ in group]
            texts = [doc_text(docs[d]) for group in groups for d in group]
            inputs = tokenize_pairs(tokenizer, queries, texts, cfg.max_length)
            with autocast(dtype):
                logits = model(**inputs).logits
            scores = pair_scores(logits).view(len(batch), cfg.negatives + 1)
            loss = torch.nn.functional.cross_entropy(scores, torch.zeros(len(batch), dtype=torch.long))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            state["losses"].append(loss.item())
            running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
            bar.set_postfix(loss=f"{running:.4f}", epoch=epoch)
            bar.update()
            if dev and cfg.dev_every and step % cfg.dev_every == 0 and step < stop_at:
                state["dev"].append({"step": step, **dev_ndcg(model, tokenizer, dataset, run, dev, cfg, dtype)})
                bar.write(f"dev at step {step}: {state['dev'][-1]}")
            if step % cfg.checkpoint_every == 0:
                checkpoint.save(step)
    if dev:
        state["dev"].append({"step": step, **dev_ndcg(model, tokenizer, dataset, run, dev, cfg, dtype)})
        log.info("dev at step %d: %s", step, state["dev"][-1])
    checkpoint.save(step)
    tail = state["losses"][-20:]
    record = {
        "base_model": cfg.base,
        "base_folder": str(base),
        "base_digest": weights_digest(base),
        "dataset": cfg.dataset,
        "dataset_fingerprint": dataset.fingerprint,
        "dataset_source": dataset.source,
        "negatives_source": {"retriever": retriever_cfg, "depth": cfg.negatives_depth, "per_query": cfg.negatives},
        "train_queries": len(train_set),
        "dev_queries": len(dev),
        "hyperparameters": cfg.learned(),
        "seed": cfg.seed,
        "compute_dtype": dtype_name(dtype),
        "steps": step,
        "total_steps": total,
        "complete": step >= total,
        "wall_s": round(state["wall_s"], 1),
        "final_loss": sum(tail) / len(tail) if tail else None,
        "dev": state["dev"],
        "losses": [round(v, 5) for v in state["losses"]],
        "command": shlex.join([Path(sys.executable).name, "-m", "rankbench.rerankers.train", *sys.argv[1:]]),
        "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__},
    }
    _save_model(model, tokenizer, out, record)
    log.info("saved %s (step %d of %d, %.0f s)", out, step, total, state["wall_s"])
    return record


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    parser = argparse.ArgumentParser(prog="python -m rerankers.train", description=__doc__.split("\n")[0])
    defaults = TrainConfig(out="")
    for name, value in asdict(defaults).items():
        flag = "--" + name.replace("_", "-")
        if name == "out":
            parser.add_argument(flag, required=True, help="model folder to write (and resume)")
        elif name == "overrides":
            parser.add_argument(flag, nargs="*", default=[], help="Hydra overrides for the dataset, e.g. dataset.path=")
        else:
            kind = type(value) if value is not None else (float if name == "max_minutes" else int)
            kind = str if name == "data_root" else kind
            parser.add_argument(flag, type=kind, default=value, help=f"default {value}")
    return TrainConfig(**vars(parse_with_recipe(parser, argv)))


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = parse_args(argv)
    with resumable(f"the last checkpoint is kept in {args.out}/checkpoint"):
        record = train(args)
    print(json.dumps({k: record[k] for k in ("steps", "total_steps", "wall_s", "final_loss", "dev")}, indent=2))


if __name__ == "__main__":
    main()
