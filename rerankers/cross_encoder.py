"""Cross-encoder reranking: one sequence-classification forward pass per (query, document) pair.

The query is the first segment and ``title + " " + text`` the second; truncation cuts only the
document (``only_second``) so the query is never lost. Pairs are scored in batches sorted by
token length (little padding), under ``torch.inference_mode``, with bf16 autocast on CPUs that
do bf16 natively (``compute_dtype``); ``dtype=int8`` (opt-in, the fast path on AVX2-only CPUs)
runs every linear layer as dynamic int8 with per-channel weight scales, as the dense encoder's
``retriever.dtype=int8`` does (docs/cross-encoder.md has its speed and its agreement with fp32).
The score of a pair is the raw logit for single-logit models, and logit(class 1) - logit(class 0)
for 2-class models: the log-odds of "relevant", monotone in its softmax probability and free of
the softmax's saturation. Truncation is counted from the one tokenisation each pair gets.

Depth, the per-(model, qid, docid) score cache and the untouched tail come from
``rankbench.harness.rerank``; ``cache_identity`` puts the weights digest into the cache key so a
retrained model in the same folder never reuses stale scores. ``interpolate=dev`` is the
first-stage weight ``rankbench.rerankers.train --dev-queries`` chose on held-out train queries, read from
the model folder's ``training.json``; the number used goes to the leaderboard row.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from omegaconf import DictConfig

from rankbench.harness.components import Pointwise
from rankbench.harness.compute import inference, length_sorted, model_dtype_name, prepare_model
from rankbench.harness.errors import ConfigError
from rankbench.harness.models import NotAnEncoder, resolve_model, training_status, weights_digest
from rankbench.harness.types import Doc, Query

if TYPE_CHECKING:  # transformers comes with the dense extra; it is imported when a model loads
    from transformers import BatchEncoding

log = logging.getLogger(__name__)

TRAIN_HINT = "python -m rankbench.rerankers.train --base {folder} --out runs/models/my-cross-encoder"
DEV_WEIGHT = "dev"  # reranker.interpolate=dev: the weight training chose on its dev queries


class NotACrossEncoder(NotAnEncoder):
    """A model folder without a sequence-classification (ranking) head."""


def doc_text(doc: Doc) -> str:
    return f"{doc.title} {doc.text}".strip()


def check_cross_encoder(folder: Path) -> None:
    """Refuse folders whose config declares no classification head, and say how to train one."""
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    architectures = config.get("architectures") or []
    if not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise NotACrossEncoder(
            f"{folder} has no sequence-classification head (architectures: {architectures or 'none'}), so it "
            f"cannot score (query, document) pairs. Train a cross-encoder from it with "
            f"`{TRAIN_HINT.format(folder=folder)}` and use reranker.model=runs/models/my-cross-encoder."
        )


def dev_weight(folder: Path) -> float:
    """The interpolation weight recorded in ``folder/training.json`` (``dev[-1].best_interpolation_weight``),
    so an evaluation uses the dev-chosen weight without anyone copying the number by hand."""
    path = folder / "training.json"
    record = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    dev = (record or {}).get("dev") or [{}]
    if "best_interpolation_weight" not in dev[-1]:
        found = "no such file" if record is None else "no dev evaluation in it"
        raise ConfigError(
            f"reranker.interpolate=dev reads dev[-1].best_interpolation_weight from {path}: {found}. "
            "Train with --dev-queries N (rankbench.rerankers.train) to have a weight chosen, "
            "or give the weight as a number."
        )
    return float(dev[-1]["best_interpolation_weight"])


def tokenize_pairs(tokenizer, queries: list[str], docs: list[str], max_length: int) -> BatchEncoding:
    """Query first, document second; only the document is truncated."""
    return tokenizer(queries, docs, padding=True, truncation="only_second", max_length=max_length, return_tensors="pt")


def pair_scores(logits: torch.Tensor) -> torch.Tensor:
    """One score per pair: the logit (1 label) or logit(1) - logit(0) (2 labels)."""
    logits = logits.float()
    if logits.shape[-1] == 1:
        return logits[:, 0]
    if logits.shape[-1] == 2:
        return logits[:, 1] - logits[:, 0]
    raise ConfigError(f"a cross-encoder needs 1 or 2 output labels, this model has {logits.shape[-1]}")


class CrossEncoder(Pointwise):
    """Pointwise reranker over a Hugging Face sequence-classification model."""

    def __init__(
        self,
        model: str,
        name: str = "cross_encoder",
        max_length: int | None = 512,
        batch_size: int = 32,
        dtype: str = "auto",
        threads: int | None = 2,
    ):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        self.name, self.batch_size = name, batch_size
        self.folder = resolve_model(model)
        check_cross_encoder(self.folder)
        self.digest = weights_digest(self.folder)
        self.tokenizer = AutoTokenizer.from_pretrained(self.folder)
        model = AutoModelForSequenceClassification.from_pretrained(self.folder).eval()
        limit = int(getattr(model.config, "max_position_embeddings", 512))
        self.max_length = min(max_length or limit, limit)
        self.model, self.dtype, _ = prepare_model(model, dtype, "reranker.dtype")
        self.pairs_scored = 0
        self.pairs_truncated = 0  # documents cut at max_length, counted over this reranker's life

    @classmethod
    def cache_identity(cls, cfg: DictConfig) -> dict[str, str]:
        """What decides the scores beyond the config: the weights and the compute dtype (``int8``, or
        the float dtype ``auto`` picks on this CPU), so int8 scores never share fp32's cache entries."""
        compute = model_dtype_name(cfg.get("dtype", "auto"), "reranker.dtype")
        return {"weights": weights_digest(resolve_model(cfg.model)), "compute_dtype": compute}

    @classmethod
    def row_columns(cls, cfg: DictConfig) -> dict[str, str]:
        """``model_complete`` from the folder's ``training.json`` (warning when false): from the config, so a
        row whose stage came from the cache carries it too."""
        return training_status(resolve_model(cfg.model))

    def provenance(self) -> dict[str, str]:
        """Leaderboard columns that identify the model."""
        return {"model": str(self.folder.absolute()), "model_hash": self.digest}

    def named_weight(self, name: str) -> float:
        """``interpolate: dev``: the first-stage weight training chose on its dev queries."""
        return dev_weight(self.folder) if name == DEV_WEIGHT else super().named_weight(name)

    def stats(self) -> dict[str, int]:
        return {"pairs_scored": self.pairs_scored, "pairs_truncated": self.pairs_truncated}

    def score(self, pairs: list[tuple[Query, Doc]]) -> list[float]:
        if not pairs:
            return []
        queries = [q.text for q, _ in pairs]
        docs = [doc_text(d) for _, d in pairs]
        scores, truncated = score_pairs(
            self.model, self.tokenizer, queries, docs, self.max_length, self.batch_size, self.dtype
        )
        if truncated:
            log.info("%d of %d documents truncated at max_length=%d", truncated, len(pairs), self.max_length)
        self.pairs_scored += len(pairs)
        self.pairs_truncated += truncated
        return scores


def truncated_rows(tokenizer, batch: BatchEncoding, queries: list[str], docs: list[str], max_length: int) -> np.ndarray:
    """1.0 for each pair whose document was cut at ``max_length``, else 0.0.

    Fast tokenizers keep what truncation cut (``Encoding.overflowing``), so the count costs nothing;
    a second, untruncated tokenisation of every pair (what slow tokenizers still need) cost about
    1.4 ms a SciFact pair on the 2 AVX2 cores, 1-3% of fp32 scoring (too little to show end to end).
    """
    if batch.encodings is not None:
        return np.array([bool(e.overflowing) for e in batch.encodings], dtype=np.float32)
    lengths = tokenizer(queries, docs, truncation=False)["input_ids"]
    return np.array([len(ids) > max_length for ids in lengths], dtype=np.float32)


def score_pairs(
    model, tokenizer, queries: list[str], docs: list[str], max_length: int, batch_size: int, dtype: torch.dtype
) -> tuple[list[float], int]:
    """(scores in input order, documents truncated), computed in length-sorted batches
    (``rankbench.harness.compute.length_sorted``) with one tokenisation per pair."""

    def forward(idx: list[int]) -> np.ndarray:
        batch_queries, batch_docs = [queries[i] for i in idx], [docs[i] for i in idx]
        batch = tokenize_pairs(tokenizer, batch_queries, batch_docs, max_length)
        cut = truncated_rows(tokenizer, batch, batch_queries, batch_docs, max_length)
        with inference(dtype):
            return np.stack([pair_scores(model(**batch).logits).numpy(), cut], axis=1)

    lengths = [len(q) + len(d) for q, d in zip(queries, docs, strict=True)]
    rows = length_sorted(lengths, batch_size, forward)
    return rows[:, 0].tolist(), int(rows[:, 1].sum())
