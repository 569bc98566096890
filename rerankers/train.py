"""Train a cross-encoder from any encoder checkpoint: ``python -m rankbench.rerankers.train --out runs/models/ce``.

No cross-encoder ships on this machine (docs/models.md), so the framework trains its own. A fresh
1-logit head goes on the encoder (AutoModelForSequenceClassification, num_labels=1); each step
takes ``batch_queries`` queries, each with 1 judged positive and ``negatives`` hard negatives
drawn (per epoch, from a seed) out of the framework's own BM25 top-``negatives_depth`` minus
the positives, and minimises the listwise softmax cross-entropy of the positive within its
group. The negatives, like the batches, are a pure function of (seed, epoch), so a resumed run
equals an uninterrupted one. The loop, optimiser, checkpoints, resume and pausing are
``rankbench.harness.training``'s. The result is a Hugging Face folder (weights, tokenizer,
``training.json``) that ``reranker.model=<folder>`` uses.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from rankbench.harness import training
from rankbench.harness.compute import autocast
from rankbench.harness.datasets import Dataset, load_dataset
from rankbench.harness.errors import ConfigError
from rankbench.harness.metrics import evaluate, parse_measures
from rankbench.harness.models import resolve_model, weights_digest
from rankbench.harness.rerank import interpolated
from rankbench.harness.stages import first_stage_run, resolved
from rankbench.harness.types import Run
from rankbench.rerankers.cross_encoder import doc_text, pair_scores, score_pairs, tokenize_pairs
from rankbench.rerankers.negatives import Example, mine_examples, sample_group

INTERPOLATION_GRID = [round(0.1 * i, 1) for i in range(10)]


@dataclass
class TrainConfig(training.TrainConfig):
    RUNTIME: ClassVar[frozenset[str]] = training.TrainConfig.RUNTIME | {"dev_every"}

    retriever: str = "bm25"
    negatives: int = 7
    negatives_depth: int = 50
    dev_queries: int = 0
    dev_depth: int = 30
    max_length: int = 256
    batch_queries: int = 4
    # Dropout on attention probabilities sends CPU SDPA down its slow path: 2.5x the step time.
    attention_dropout: float = 0.0
    dev_every: int = 0  # 0: evaluate on the dev queries only at the end


def load_training_data(cfg: TrainConfig) -> tuple[Dataset, Run, dict[str, Any]]:
    """The dataset, its first-stage run (from the stage cache) and that retriever's resolved config."""
    hcfg = cfg.hydra_config(f"retriever={cfg.retriever}")
    dataset = load_dataset(hcfg.dataset, hcfg.data_root, Path(cfg.cache_dir))
    first = first_stage_run(hcfg.retriever, dataset.corpus, dataset.queries, Path(cfg.cache_dir))
    return dataset, first.run, resolved(hcfg.retriever)


def split_dev(examples: list[Example], dev_queries: int, seed: int) -> tuple[list[Example], list[Example]]:
    shuffled = list(examples)
    random.Random(f"{seed}-dev").shuffle(shuffled)
    return shuffled[dev_queries:], shuffled[:dev_queries]


def dev_ndcg(model, tokenizer, dataset, run: Run, dev: list[Example], cfg: TrainConfig, dtype) -> dict[str, Any]:
    """nDCG@10 on held-out train queries: BM25 alone, reranked at ``dev_depth`` (tail kept), and
    reranked with each first-stage interpolation weight of the grid (so a weight is chosen on dev)."""
    queries = {q.qid: q.text for q in dataset.queries}
    qrels = {e.qid: dataset.qrels[e.qid] for e in dev}
    heads = {e.qid: run.get(e.qid, [])[: cfg.dev_depth] for e in dev}
    docs = dataset.corpus.get_many({d for head in heads.values() for d, _ in head})
    pairs = [(qid, d) for qid, head in heads.items() for d, _ in head]
    model.eval()
    flat, _ = score_pairs(
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


class CrossEncoderTrainer(training.Trainer):
    """A fresh 1-logit head on ``cfg.base``, trained on BM25 hard negatives with a listwise softmax loss."""

    evaluations = "dev"
    module = "rankbench.rerankers.train"
    cfg: TrainConfig

    @property
    def evaluate_every(self) -> int:
        return self.cfg.dev_every

    def data(self) -> training.Batches[Example]:
        cfg = self.cfg
        self.dataset, self.run, self.retriever_cfg = load_training_data(cfg)
        examples = mine_examples(self.run, self.dataset.qrels, cfg.negatives_depth)
        self.train_set, self.dev = split_dev(examples, cfg.dev_queries, cfg.seed)
        if not self.train_set:
            raise ConfigError(f"no training query of {cfg.dataset} has both a positive and a negative")
        self.docs = self.dataset.corpus.get_many({d for e in self.train_set for d in (*e.positives, *e.negatives)})
        self.query_text = {q.qid: q.text for q in self.dataset.queries}
        return training.Batches(self.train_set, cfg.batch_queries, cfg.seed)

    def build_model(self) -> torch.nn.Module:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.base = resolve_model(self.cfg.base)
        self.tokenizer = AutoTokenizer.from_pretrained(self.base)
        return AutoModelForSequenceClassification.from_pretrained(
            self.base, num_labels=1, attention_probs_dropout_prob=self.cfg.attention_dropout
        )

    def loss(self, batch: list[Example], epoch: int) -> torch.Tensor:
        """Softmax cross-entropy of each query's positive within its group (positive first)."""
        cfg = self.cfg
        groups = [sample_group(e, cfg.negatives, random.Random(f"{cfg.seed}-{epoch}-{e.qid}")) for e in batch]
        queries = [self.query_text[e.qid] for e, group in zip(batch, groups, strict=True) for _ in group]
        texts = [doc_text(self.docs[d]) for group in groups for d in group]
        inputs = tokenize_pairs(self.tokenizer, queries, texts, cfg.max_length)
        with autocast(self.dtype):
            logits = self.model(**inputs).logits
        scores = pair_scores(logits).view(len(batch), cfg.negatives + 1)
        return torch.nn.functional.cross_entropy(scores, torch.zeros(len(batch), dtype=torch.long))

    def evaluate(self) -> dict[str, Any] | None:
        if not self.dev:
            return None
        return dev_ndcg(self.model, self.tokenizer, self.dataset, self.run, self.dev, self.cfg, self.dtype)

    def describe(self) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "base_model": cfg.base,
            "base_folder": str(self.base),
            "base_digest": weights_digest(self.base),
            "dataset": cfg.dataset,
            "dataset_fingerprint": self.dataset.fingerprint,
            "dataset_source": self.dataset.source,
            "negatives_source": {
                "retriever": self.retriever_cfg,
                "depth": cfg.negatives_depth,
                "per_query": cfg.negatives,
            },
            "train_queries": len(self.train_set),
            "dev_queries": len(self.dev),
        }

    def inputs(self) -> dict[str, str]:
        return {"base_digest": weights_digest(self.base), "dataset_fingerprint": self.dataset.fingerprint}

    def save(self, out: Path) -> dict[str, Any]:
        """Write the HF folder beside the final location, then move each file in (a kill leaves the old one)."""
        tmp = out / f".final.tmp-{os.getpid()}"
        tmp.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(tmp)
        self.tokenizer.save_pretrained(tmp)
        for path in tmp.iterdir():
            os.replace(path, out / path.name)
        tmp.rmdir()
        return {"model_digest": weights_digest(out)}


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train (or resume) and save the model folder; returns what training.json records."""
    return training.fit(CrossEncoderTrainer(cfg))


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    return training.parse_config(TrainConfig, "python -m rankbench.rerankers.train", __doc__.split("\n")[0], argv)


def main(argv: list[str] | None = None) -> None:
    training.main(train, parse_args(argv), CrossEncoderTrainer.evaluations)


if __name__ == "__main__":
    main()
