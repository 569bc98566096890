"""Train a generative retriever for one corpus: ``python -m rankbench.retrievers.train_generative --out DIR``.

A generative retriever memorises its corpus: the model learns to spell each document's id
from the document itself (indexing examples: title + text), from pseudo-queries cut from it
(its first sentence, its title, ``spans`` random word spans; seeded) and, when the dataset is a
train split (``dataset=scifact-train``), from the judged train queries. Test qrels are never
trained on. A held-out slice (``eval_size`` train queries when there are any, else one unseen
random span per document) reports Hits@1/Hits@10 under constrained beam search as training goes.

The loop, optimiser, checkpoints (``<out>/checkpoint/state.pt``), resume, pausing and
``training.json`` are ``rankbench.harness.training``'s, shared with ``rankbench.rerankers.train``.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from rankbench.harness import training
from rankbench.harness.compute import autocast
from rankbench.harness.datasets import Dataset, load_dataset
from rankbench.harness.errors import ConfigError
from rankbench.harness.models import resolve_model, weights_digest
from rankbench.harness.types import Doc
from rankbench.retrievers.docids import DocIdMap, build_docids, scheme_settings
from rankbench.retrievers.generative_model import WEIGHTS_FILE, GenerativeRetriever


@dataclass
class TrainConfig(training.TrainConfig):
    RUNTIME: ClassVar[frozenset[str]] = training.TrainConfig.RUNTIME | {"eval_every"}

    init: str = "pretrained"  # pretrained: the base's weights | scratch: its shape and tokenizer only
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
    warmup: float = 0.05
    decoder_layers: int = 2
    freeze_word_embeddings: bool = True  # half the encoder's weights; updating them costs ~10% of a step
    checkpoint_every: int = 100
    eval_every: int = 0  # 0: evaluate only at the end


@dataclass(frozen=True)
class Example:
    text: str
    target: int  # row of the id map
    source: str  # indexing | first_sentence | title | span | query


def load_data(cfg: TrainConfig) -> tuple[Dataset, bool]:
    """The dataset and whether its judged queries may be trained on (only a train split's)."""
    hcfg = cfg.hydra_config()
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


class GenerativeTrainer(training.Trainer):
    """An encoder-decoder that spells each document's id from its text, pseudo-queries and judged queries."""

    evaluations = "evals"
    module = "rankbench.retrievers.train_generative"
    cfg: TrainConfig

    def __init__(self, cfg: TrainConfig):
        if cfg.init not in ("pretrained", "scratch"):
            raise ConfigError(f"--init must be pretrained or scratch, got {cfg.init!r}")
        super().__init__(cfg)

    @property
    def evaluate_every(self) -> int:
        return self.cfg.eval_every

    def data(self) -> training.Batches[Example]:
        cfg = self.cfg
        self.dataset, use_queries = load_data(cfg)
        settings = scheme_settings(cfg.docids, cfg.k, cfg.max_leaf, cfg.max_depth)
        self.docids = build_docids(self.dataset.corpus, cfg.docids, settings, cfg.seed, Path(cfg.cache_dir))
        self.train_set, self.held_out = split_examples(self.dataset, self.docids, use_queries, cfg)
        return training.Batches(self.train_set, cfg.batch_size, cfg.seed, cfg.bucket, length=lambda e: len(e.text))

    def build_model(self) -> torch.nn.Module:
        cfg = self.cfg
        self.base = resolve_model(cfg.base)
        arch = {"max_length": cfg.max_length, "decoder_layers": cfg.decoder_layers}
        model = GenerativeRetriever.fresh(
            self.base, cfg.base, self.docids, cfg.position_aware, cfg.init == "pretrained", **arch
        )
        if cfg.freeze_word_embeddings:
            model.encoder.get_input_embeddings().requires_grad_(False)
        return model

    def param_groups(self) -> list[dict[str, Any]]:
        """The encoder at ``lr``, the fresh decoder at ``decoder_lr``."""
        encoder = [p for p in self.model.encoder.parameters() if p.requires_grad]
        decoder = [p for n, p in self.model.named_parameters() if not n.startswith("encoder.")]
        return [{"params": encoder}, {"params": decoder, "lr": self.cfg.decoder_lr}]

    def loss(self, batch: list[Example], epoch: int) -> torch.Tensor:
        with autocast(self.dtype):
            return self.model.loss([e.text for e in batch], [e.target for e in batch])

    def evaluate(self) -> dict[str, Any]:
        return hits(self.model, self.held_out)

    def describe(self) -> dict[str, Any]:
        """The data, id scheme and corpus fingerprint."""
        sources: dict[str, int] = {}
        for e in self.train_set:
            sources[e.source] = sources.get(e.source, 0) + 1
        held_out, docids = self.held_out, self.docids
        return {
            "base_model": self.cfg.base,
            "base_digest": weights_digest(self.base),
            "dataset": self.cfg.dataset,
            "dataset_source": self.dataset.source,
            "corpus_fingerprint": self.dataset.corpus.fingerprint,
            "documents": len(docids.docids),
            "docids": {"scheme": docids.scheme, "settings": docids.settings, "digest": docids.digest},
            "id_length_max": max(map(len, docids.ids)),
            "train_examples": sources,
            "held_out": {"examples": len(held_out), "source": held_out[0].source if held_out else None},
        }

    def inputs(self) -> dict[str, str]:
        return {
            "base_digest": weights_digest(self.base),
            "dataset_fingerprint": self.dataset.fingerprint,
            "docids_digest": self.docids.digest,
        }

    def save(self, out: Path) -> dict[str, Any]:
        self.model.save(out)
        return {"model_bytes": (out / WEIGHTS_FILE).stat().st_size}


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train (or resume) and save the model folder; returns what training.json records."""
    return training.fit(GenerativeTrainer(cfg))


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    return training.parse_config(
        TrainConfig, "python -m rankbench.retrievers.train_generative", __doc__.split("\n")[0], argv
    )


def main(argv: list[str] | None = None) -> None:
    training.main(train, parse_args(argv), GenerativeTrainer.evaluations)


if __name__ == "__main__":
    main()
