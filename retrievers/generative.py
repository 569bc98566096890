"""Generative retrieval: a model trained here (``python -m rankbench.retrievers.train_generative``) spells the
ids of the documents it finds, under a trie of the corpus' ids, so only real documents come out.

The model folder carries its id map and the fingerprint of the corpus it memorised; a corpus with
another fingerprint is refused, since the ids would name other documents or none.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig

from rankbench.harness.cache import file_digest
from rankbench.harness.components import Retriever
from rankbench.harness.errors import ConfigError
from rankbench.harness.models import ModelUnavailable, resolve_model, training_status
from rankbench.harness.types import Corpus, Query, Run
from rankbench.retrievers.generative_model import CONFIG_FILE, DOCIDS_FILE, WEIGHTS_FILE, GenerativeRetriever

log = logging.getLogger(__name__)


class Generative(Retriever):
    """Constrained beam search over the corpus' ids; ``hits`` ids per query, best first."""

    CACHE_VERSION = 1

    def __init__(
        self,
        model: str | None = None,
        name: str = "generative",
        hits: int = 100,
        beam_size: int | None = None,
        batch_size: int = 32,
        threads: int = 2,
        remove_query: bool = False,
    ):
        if not model:
            raise ConfigError(
                "retriever.model is required: the folder that "
                "`python -m rankbench.retrievers.train_generative --out <folder>` wrote"
            )
        if hits < 1 or (beam_size is not None and beam_size < 1):
            raise ConfigError(f"retriever.hits and retriever.beam_size must be >= 1, got {hits} and {beam_size}")
        self.model_name, self.name, self.hits, self.beam_size = model, name, hits, beam_size
        self.batch_size, self.threads, self.remove_query = batch_size, threads, remove_query
        self.model: GenerativeRetriever | None = None

    @classmethod
    def cache_identity(cls, cfg: DictConfig) -> str:
        """The model's content (weights and id map): a folder retrained in place must not serve old runs."""
        folder = _model_folder(str(cfg.model))
        return "-".join(file_digest(folder / name) for name in (CONFIG_FILE, DOCIDS_FILE, WEIGHTS_FILE))

    @classmethod
    def row_columns(cls, cfg: DictConfig) -> dict[str, str]:
        """``model_complete`` from the folder's ``training.json`` (warning when false); the row of a first
        stage takes its columns from the config only, and a cached run carries it too."""
        return training_status(_model_folder(str(cfg.model)))

    def index(self, corpus: Corpus, cache_dir: Path) -> None:
        """Load the model and check it was trained on this very corpus (nothing else to index)."""
        torch.set_num_threads(self.threads)
        self.model = GenerativeRetriever.load(_model_folder(self.model_name))
        trained_on = self.model.docids.corpus_fingerprint
        if trained_on != corpus.fingerprint:
            raise ConfigError(
                f"retriever.model={self.model_name} was trained on corpus {trained_on}, but this dataset's corpus "
                f"({corpus.source}) is {corpus.fingerprint}: its ids would name other documents. Train one for "
                "this corpus with `python -m rankbench.retrievers.train_generative --out <folder> --dataset <name>`"
            )
        size = self.model.trie.size
        if self.hits > size:
            log.warning("retriever.hits=%d exceeds the corpus' %d documents: returning %d", self.hits, size, size)
            self.hits = size
        beam = self.beam_size or self.hits
        if beam < self.hits:
            raise ConfigError(f"retriever.beam_size={beam} must be >= retriever.hits={self.hits}")
        self.beam_size = min(beam, size)

    def retrieve(self, queries: list[Query]) -> Run:
        """Top ``hits`` documents per query; an empty query retrieves nothing."""
        if self.model is None:
            raise RuntimeError("Generative.retrieve called before index()")
        asked = [q for q in queries if q.text.strip()]
        run: Run = {q.qid: [] for q in queries}
        depth = min(self.hits + int(self.remove_query), self.model.trie.size)
        found = self.model.search([q.text for q in asked], depth, max(self.beam_size, depth), self.batch_size)
        docids = self.model.docids.docids
        for q, ranked in zip(asked, found, strict=True):
            hits = [(docids[row], score) for row, score in ranked]
            if self.remove_query:
                hits = [h for h in hits if h[0] != q.qid]
            run[q.qid] = hits[: self.hits]
        return run


def _model_folder(name: str) -> Path:
    try:
        folder = resolve_model(name)
    except ModelUnavailable as e:
        raise ConfigError(f"retriever.model={name}: {e}") from None
    if not (folder / CONFIG_FILE).is_file():
        raise ConfigError(
            f"retriever.model={name}: {folder} has no {CONFIG_FILE}, so it is not a generative retriever; "
            "train one with `python -m rankbench.retrievers.train_generative --out <folder>`"
        )
    return folder
