"""Document identifiers for generative retrieval: what the decoder learns to spell for each document.

Three schemes, as in the literature:

- ``semantic`` (DSI/NCI): hierarchical k-means over the documents' all-MiniLM-L6-v2 embeddings
  (the dense retriever's own embedding cache). A cluster larger than ``max_leaf`` is split into
  ``k`` clusters, recursively; the documents of a small enough cluster are numbered. Similar
  documents share prefixes, so the decoder can generalise from one to its neighbours.
- ``atomic``: one token per document (a classifier over the corpus).
- ``title`` (GENRE): the title's word pieces; titles must be unique, so duplicates are refused.

An id map is a pure function of (corpus, scheme, settings, seed) and is cached with a manifest.
The k-means is plain numpy with a seeded k-means++ init: faiss' multi-threaded k-means may sum in
a different order from run to run, and ids must not change under a fixed seed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rankbench.harness import cache
from rankbench.harness.embeddings import corpus_embeddings
from rankbench.harness.errors import ConfigError
from rankbench.harness.models import encoder_spec, resolve_model
from rankbench.harness.types import Corpus

log = logging.getLogger(__name__)

SCHEMES = ("semantic", "atomic", "title")
EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
CODE_VERSION = 1  # bump when a change alters the ids a setting produces


@dataclass(frozen=True)
class DocIdMap:
    """docids[i] is spelled ids[i]; ``digest`` names the map's content."""

    scheme: str
    settings: dict[str, Any]
    corpus_fingerprint: str
    docids: list[str]
    ids: list[tuple[int, ...]]

    @property
    def digest(self) -> str:
        payload = json.dumps([self.scheme, self.settings, self.corpus_fingerprint, self.docids, self.ids])
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def to_json(self) -> str:
        fields = {"scheme": self.scheme, "settings": self.settings, "corpus_fingerprint": self.corpus_fingerprint}
        return json.dumps({**fields, "digest": self.digest, "docids": self.docids, "ids": [list(i) for i in self.ids]})

    @classmethod
    def from_json(cls, text: str) -> DocIdMap:
        """Parse ``to_json``'s output; content that no longer matches its digest raises ValueError."""
        data = json.loads(text)
        ids = [tuple(i) for i in data["ids"]]
        parsed = cls(data["scheme"], data["settings"], data["corpus_fingerprint"], data["docids"], ids)
        if data.get("digest", parsed.digest) != parsed.digest:
            raise ValueError(f"id map content does not match its digest {data['digest']}")
        return parsed


def scheme_settings(scheme: str, k: int, max_leaf: int | None, max_depth: int) -> dict[str, Any]:
    """The settings that decide a scheme's ids (and only those: they key the cache)."""
    if scheme not in SCHEMES:
        raise ConfigError(f"docids must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    if scheme == "semantic":
        if k < 2 or max_depth < 1 or (max_leaf is not None and max_leaf < 1):
            raise ConfigError(
                f"docids=semantic needs k >= 2, max_depth >= 1 and max_leaf >= 1 (got {k}, {max_depth}, {max_leaf})"
            )
        return {"k": k, "max_leaf": max_leaf or k, "max_depth": max_depth, "embeddings": EMBEDDING_MODEL}
    if scheme == "title":
        return {"tokenizer": EMBEDDING_MODEL}
    return {}


def build_docids(corpus: Corpus, scheme: str, settings: dict[str, Any], seed: int, cache_dir: Path) -> DocIdMap:
    """The id map of ``corpus``, from the cache when these settings were built before."""
    key = {"kind": "docids", "scheme": scheme, **settings, "seed": seed, "corpus": corpus.fingerprint}
    key["code"] = CODE_VERSION
    root = cache_dir / "docids"
    with cache.locked(root, key):
        entry = cache.lookup(root, key)
        if entry is None:
            built = _build(corpus, scheme, settings, seed, cache_dir)
            with cache.build(root, key) as tmp:
                (tmp / "docids.json").write_text(built.to_json())
            entry = cache.lookup(root, key)
            assert entry is not None, "freshly written id map failed verification"
    return DocIdMap.from_json((entry / "docids.json").read_text())


def _build(corpus: Corpus, scheme: str, settings: dict[str, Any], seed: int, cache_dir: Path) -> DocIdMap:
    if scheme == "atomic":
        docids = [d.docid for d in corpus]
        ids = [(i,) for i in range(len(docids))]
    elif scheme == "title":
        docids, ids = _title_ids(corpus)
    else:
        from rankbench.retrievers.encoder import TorchEncoder

        encoder = TorchEncoder(encoder_spec(settings["embeddings"]))
        emb = corpus_embeddings(encoder, corpus, cache_dir, 32, "float16", 8192)
        docids = list(emb.docids)
        vectors = np.asarray(emb.vectors, dtype=np.float32)
        ids = semantic_ids(vectors, settings["k"], settings["max_leaf"], settings["max_depth"], seed)
    log.info("%s ids for %d documents (longest %d tokens)", scheme, len(ids), max(map(len, ids), default=0))
    return DocIdMap(scheme, settings, corpus.fingerprint, docids, ids)


def _title_ids(corpus: Corpus) -> tuple[list[str], list[tuple[int, ...]]]:
    """GENRE-style ids: the title's word pieces; empty or duplicated titles cannot name a document."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(EMBEDDING_MODEL))
    docids, ids, by_id = [], [], defaultdict(list)
    for doc in corpus:
        pieces = tuple(tokenizer(doc.title.strip(), add_special_tokens=False)["input_ids"])
        docids.append(doc.docid)
        ids.append(pieces)
        by_id[pieces].append(doc)
    if empty := by_id.get(()):
        raise ConfigError(
            f"docids=title: {len(empty)} document(s) have no title (e.g. {empty[0].docid!r}); "
            "use docids=semantic or docids=atomic for this corpus"
        )
    if dups := [docs for docs in by_id.values() if len(docs) > 1]:
        named = "; ".join(f"{docs[0].title!r} ({', '.join(d.docid for d in docs[:5])})" for docs in dups[:5])
        raise ConfigError(
            f"docids=title: {len(dups)} title(s) are shared by several documents, so a title cannot name one: "
            f"{named}. Use docids=semantic or docids=atomic for this corpus"
        )
    return docids, ids


def semantic_ids(vectors: np.ndarray, k: int, max_leaf: int, max_depth: int, seed: int) -> list[tuple[int, ...]]:
    """Hierarchical k-means ids: cluster numbers from the root down, then the position inside the leaf."""
    ids: list[tuple[int, ...]] = [()] * len(vectors)
    stack = [(np.arange(len(vectors)), ())]
    while stack:
        rows, prefix = stack.pop()
        if len(rows) <= max_leaf or len(prefix) >= max_depth - 1:
            for position, row in enumerate(rows):
                ids[row] = (*prefix, position)
            continue
        path_seed = int.from_bytes(hashlib.sha256(f"{seed}-{prefix}".encode()).digest()[:4], "little")
        labels = kmeans(vectors[rows], min(k, len(rows)), path_seed)
        if len(np.unique(labels)) == 1:  # identical vectors: split by position so the recursion ends
            labels = np.arange(len(rows)) * k // len(rows)
        stack += [(rows[labels == c], (*prefix, int(c))) for c in np.unique(labels)]
    return ids


def kmeans(x: np.ndarray, k: int, seed: int, iterations: int = 25) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding; deterministic for a seed. Returns one label per row."""
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(len(x))]]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        centres.append(x[rng.choice(len(x), p=d2 / d2.sum())] if d2.sum() > 0 else x[rng.integers(len(x))])
        d2 = np.minimum(d2, ((x - centres[-1]) ** 2).sum(1))
    c = np.stack(centres)
    labels = np.zeros(len(x), dtype=np.int64)
    for iteration in range(iterations):
        distances = (x**2).sum(1)[:, None] - 2 * x @ c.T + (c**2).sum(1)[None]
        new = distances.argmin(1)
        if iteration and np.array_equal(new, labels):  # converged
            break
        labels = new
        for j in range(k):
            if (members := labels == j).any():
                c[j] = x[members].mean(0)
    return labels


def token_sequences(ids: list[tuple[int, ...]], position_aware: bool) -> tuple[list[list[int]], list[list[int]]]:
    """Ids as decoder token sequences over a compact vocabulary, and that vocabulary's (level, value) keys.

    Position-aware (NCI): value 3 at level 0 and value 3 at level 1 are different tokens, since a
    cluster number means something different at each level of the tree.
    """
    keys = sorted({(level if position_aware else 0, v) for seq in ids for level, v in enumerate(seq)})
    index = {key: i for i, key in enumerate(keys)}
    sequences = [[index[(level if position_aware else 0, v)] for level, v in enumerate(seq)] for seq in ids]
    return sequences, [list(key) for key in keys]
