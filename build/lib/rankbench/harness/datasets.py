"""Resolve a dataset config to corpus, queries and qrels, offline first.

Order: an explicit ``dataset.path`` (a BEIR folder or zip, or an MS MARCO-style folder holding
``collection.tsv``), then the data root (``<root>/beir/<beir_name>.zip`` or folder,
``<root>/topics-qrels/`` Anserini files), then the ir_datasets id (downloads, or files staged
under ``IR_DATASETS_HOME``).

Documents by id: ``load_dataset(..., cache_dir=...)`` gives local corpora (BEIR, TSV) a document
store under ``<cache_dir>/docstore/`` (harness/docstore.py), built on their first ``get_many``
and reused by every later process. Without a cache_dir, ``get_many`` reads the whole file.
ir_datasets corpora use ir_datasets' own docstore.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rankbench.harness.docstore import DocStore, open_store
from rankbench.harness.errors import DataError, DatasetUnavailable
from rankbench.harness.readers import (
    BeirSource,
    file_sha256,
    iter_beir_docs,
    iter_tsv_docs,
    read_anserini_topics,
    read_beir_qrels,
    read_beir_queries,
    read_trec_qrels,
)
from rankbench.harness.types import Corpus, Doc, Qrels, Query

log = logging.getLogger(__name__)

DATA_ROOT_ENV = "RANKBENCH_DATA_ROOT"
TSV_COLLECTION = "collection.tsv"  # its presence in dataset.path marks the MS MARCO layout
Topics = tuple[dict[str, Query], Qrels, tuple[str, str]]  # queries, qrels, where each came from


@dataclass
class Dataset:
    name: str
    corpus: Corpus
    queries: list[Query]  # judged queries only, in natural qid order
    qrels: Qrels
    source: str
    unknown_qrels_queries: list[str] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        """Content hash of corpus, queries and qrels: the identity of what is evaluated."""
        payload = {
            "corpus": self.corpus.fingerprint,
            "queries": [(q.qid, q.text) for q in self.queries],
            "qrels": sorted((q, d, r) for q, docs in self.qrels.items() for d, r in docs.items()),
        }
        return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]


class StoredCorpus:
    """A local corpus file whose ``get_many`` is served by a document store built once per fingerprint.

    Subclasses set ``fingerprint`` and ``source`` and implement ``__iter__``. ``store_root`` is
    ``<cache_dir>/docstore``; None (no cache dir given) falls back to one scan of the file per call.
    """

    fingerprint: str
    source: str

    def __init__(self, store_root: Path | None):
        self.store_root = store_root
        self._store: DocStore | None = None

    def __iter__(self) -> Iterator[Doc]:
        raise NotImplementedError

    def count_hint(self) -> int | None:
        return None

    def get_many(self, docids: set[str]) -> dict[str, Doc]:
        if self.store_root is None:
            log.warning("%s: no cache_dir, so get_many reads the whole corpus (pass cache_dir to load_dataset)", self)
            return {d.docid: d for d in self if d.docid in docids}
        return self.store().get_many(docids)

    def store(self) -> DocStore:
        """The document store, built (reading the corpus once) the first time any process asks."""
        if self.store_root is None:
            raise ValueError(f"{self.source}: no store_root, so no document store")
        if self._store is None:
            self._store = open_store(self.store_root, self.fingerprint, lambda: iter(self), self.source)
        return self._store

    def __str__(self) -> str:
        return self.source


class BeirCorpus(StoredCorpus):
    """corpus.jsonl of a BEIR folder or zip, validated as it is read."""

    def __init__(self, source: BeirSource, store_root: Path | None = None):
        super().__init__(store_root)
        self._source = source
        self.source = source.display("corpus.jsonl")
        self.fingerprint = "sha256:" + source.sha256("corpus.jsonl")

    def __iter__(self) -> Iterator[Doc]:
        return iter_beir_docs(self._source)


class TsvCorpus(StoredCorpus):
    """MS MARCO's official collection.tsv (docid<TAB>text), validated as it is read."""

    def __init__(self, path: Path, store_root: Path | None = None):
        super().__init__(store_root)
        self.path = path
        self.source = str(path)
        self.fingerprint = "sha256:" + file_sha256(path)

    def __iter__(self) -> Iterator[Doc]:
        return iter_tsv_docs(self.path)


class IrDatasetsCorpus:
    """Documents of an ir_datasets collection; its id names fixed, versioned content."""

    def __init__(self, dataset: Any, docs_id: str):
        self._dataset = dataset
        self.source = f"ir_datasets:{docs_id}"
        self.fingerprint = f"ir_datasets:{docs_id}"

    def __iter__(self) -> Iterator[Doc]:
        for d in self._dataset.docs_iter():
            yield Doc(d.doc_id, getattr(d, "title", "") or "", d.text or "")

    def count_hint(self) -> int | None:
        return self._dataset.docs_count()

    def get_many(self, docids: set[str]) -> dict[str, Doc]:
        found = self._dataset.docs_store().get_many(docids)
        return {i: Doc(i, getattr(d, "title", "") or "", d.text or "") for i, d in found.items()}


def natural_key(qid: str) -> list[tuple[int, int, str]]:
    """Digit runs compare as numbers, so "q2" < "q10" and "2" < "10"."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", qid) if part]


def load_dataset(cfg: Mapping[str, Any], data_root: str | None, cache_dir: Path | str | None = None) -> Dataset:
    """Resolve ``cfg`` (a conf/dataset entry) to a Dataset, or say where it looked.

    ``cache_dir`` (the run's, ``cfg.cache_dir``) is where a local corpus keeps its document store.
    """
    name = cfg["name"]
    looked: list[str] = []
    store_root = Path(cache_dir) / "docstore" if cache_dir is not None else None
    if cfg.get("path"):
        path = Path(cfg["path"]).expanduser()
        if not path.exists():
            raise DatasetUnavailable(f"dataset.path={path} does not exist (dataset {name!r})")
        if path.is_dir() and (path / TSV_COLLECTION).is_file():
            return _from_tsv(cfg, path, data_root, store_root)
        return _from_beir(name, BeirSource(path), cfg["split"], store_root)
    topics: Topics | None = None
    if data_root:
        root = Path(data_root).expanduser()
        beir = _find_beir(root, cfg.get("beir_name"), looked)
        if beir is not None:
            return _from_beir(name, beir, cfg["split"], store_root)
        topics = _find_anserini(root, cfg, looked)
    corpus, irds_topics = _from_ir_datasets(cfg, looked, need_topics=topics is None)
    return _assemble(name, corpus, *(topics or irds_topics), corpus.source)


def _find_beir(root: Path, beir_name: str | None, looked: list[str]) -> BeirSource | None:
    if not beir_name:
        return None
    for candidate in (root / "beir" / f"{beir_name}.zip", root / "beir" / beir_name):
        looked.append(str(candidate))
        if candidate.exists():
            return BeirSource(candidate)
    return None


def _find_anserini(root: Path, cfg: Mapping[str, Any], looked: list[str]) -> Topics | None:
    if not cfg.get("topics") or not cfg.get("qrels"):
        return None
    topics, qrels = root / "topics-qrels" / cfg["topics"], root / "topics-qrels" / cfg["qrels"]
    looked.extend([str(topics), str(qrels)])
    if topics.is_file() and qrels.is_file():
        return read_anserini_topics(topics), read_trec_qrels(qrels), (str(topics), str(qrels))
    return None


def _from_beir(name: str, source: BeirSource, split: str, store_root: Path | None) -> Dataset:
    if source.path.is_dir() and not source.has("corpus.jsonl"):
        raise DataError(
            f"{source.path}: expected a BEIR folder (corpus.jsonl, queries.jsonl, qrels/) "
            f"or an MS MARCO-style folder ({TSV_COLLECTION}, a queries file, TREC qrels); it holds neither"
        )
    return _assemble(
        name,
        BeirCorpus(source, store_root),
        read_beir_queries(source),
        read_beir_qrels(source, split),
        (source.display("queries.jsonl"), source.display(f"qrels/{split}.tsv")),
        str(source.path),
    )


def _from_tsv(cfg: Mapping[str, Any], folder: Path, data_root: str | None, store_root: Path | None) -> Dataset:
    """MS MARCO's official layout: collection.tsv, a ``queries.*.tsv`` file and TREC qrels.

    Queries come from ``dataset.queries`` (else ``dataset.topics``), qrels from ``dataset.qrels``;
    each name is looked up in the folder first, then in ``<data_root>/topics-qrels/``.
    """
    queries_path = _topic_file(cfg, folder, data_root, ("queries", "topics"), "queries")
    qrels_path = _topic_file(cfg, folder, data_root, ("qrels",), "qrels")
    return _assemble(
        cfg["name"],
        TsvCorpus(folder / TSV_COLLECTION, store_root),
        read_anserini_topics(queries_path),
        read_trec_qrels(qrels_path),
        (str(queries_path), str(qrels_path)),
        str(folder),
    )


def _topic_file(cfg: Mapping[str, Any], folder: Path, data_root: str | None, keys: tuple[str, ...], what: str) -> Path:
    """The first of the files named by ``keys`` found in ``folder`` or the data root's topics-qrels/."""
    bases = [folder] + ([Path(data_root).expanduser() / "topics-qrels"] if data_root else [])
    looked = []
    for key in keys:
        if not cfg.get(key):
            continue
        for base in bases:
            candidate = base / cfg[key]
            looked.append(f"{candidate} (dataset.{key})")
            if candidate.is_file():
                return candidate
    where = "\n".join(f"  - {w}" for w in looked) or f"  (nothing: dataset.{' and dataset.'.join(keys)} unset)"
    raise DatasetUnavailable(
        f"dataset {cfg['name']!r}: {folder} holds {TSV_COLLECTION} but no {what} file was found. Looked for:\n{where}\n"
        f"Name one with dataset.{keys[0]}=<file name in {folder}, or a path>"
    )


def _from_ir_datasets(cfg: Mapping[str, Any], looked: list[str], need_topics: bool) -> tuple[Corpus, Topics]:
    """Corpus (and topics/qrels when no local files had them) through ir_datasets."""
    dataset_id = cfg.get("ir_datasets_id")
    if not dataset_id:
        raise _unavailable(cfg, looked, None)
    looked.append(
        f"ir_datasets {dataset_id!r} (IR_DATASETS_HOME={os.environ.get('IR_DATASETS_HOME', '~/.ir_datasets')})"
    )
    try:
        import ir_datasets

        dataset = ir_datasets.load(dataset_id)
        next(iter(dataset.docs_iter()))  # fail here, not mid-indexing, when docs are unreachable
        corpus = IrDatasetsCorpus(dataset, ir_datasets.docs_parent_id(dataset_id))
        if not need_topics:
            return corpus, ({}, {}, ("", ""))
        queries = {q.query_id: Query(q.query_id, q.text) for q in dataset.queries_iter()}
        qrels: Qrels = {}
        for r in dataset.qrels_iter():
            qrels.setdefault(r.query_id, {})[r.doc_id] = int(r.relevance)
        return corpus, (queries, qrels, (f"ir_datasets:{dataset_id} queries", f"ir_datasets:{dataset_id} qrels"))
    except Exception as e:  # network, missing staged file, unknown id: all the same to the user
        raise _unavailable(cfg, looked, e) from e


def _unavailable(cfg: Mapping[str, Any], looked: list[str], cause: Exception | None) -> DatasetUnavailable:
    where = "\n".join(f"  - {w}" for w in looked) or "  (nothing: no path, data root or ir_datasets id set)"
    reason = f"\nlast error: {type(cause).__name__}: {str(cause)[:300]}" if cause else ""
    return DatasetUnavailable(
        f"dataset {cfg['name']!r} could not be resolved. Looked in:\n{where}{reason}\n"
        "To provide it: set dataset.path=<BEIR folder or zip, or a folder with collection.tsv>; or data_root=<dir> "
        f"(env {DATA_ROOT_ENV}) holding beir/<name>.zip and topics-qrels/; or allow network access "
        "for ir_datasets, or stage its source files under IR_DATASETS_HOME."
    )


def _assemble(
    name: str, corpus: Corpus, queries: dict[str, Query], qrels: Qrels, where: tuple[str, str], source: str
) -> Dataset:
    """Keep judged queries only; warn about (and count) qrels for queries that do not exist.

    Qrels that judge no topic at all would score every system 0: that is refused, not reported.
    """
    unknown = sorted(set(qrels) - set(queries), key=natural_key)
    if unknown:
        log.warning(
            "%s: qrels name %d queries missing from the topics (ignored): %s",
            name,
            len(unknown),
            ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else ""),
        )
    judged = sorted((q for q in queries.values() if q.qid in qrels), key=lambda q: natural_key(q.qid))
    if not judged:
        topics_src, qrels_src = where
        example = f"; their query ids look like {', '.join(list(qrels)[:3])}" if qrels else ""
        raise DataError(
            f"dataset {name!r}: the qrels ({qrels_src}) judge none of the {len(queries)} topics in {topics_src}"
            f"{example}; expected query ids such as {', '.join(list(queries)[:3]) or '(no topics)'}"
        )
    kept_qrels = {q.qid: qrels[q.qid] for q in judged}
    return Dataset(name, corpus, judged, kept_qrels, source, unknown)


def self_judged_pairs(qrels: Qrels) -> list[tuple[str, int]]:
    """(qid, grade) of every judgement whose document id equals its query id, in natural qid order."""
    pairs = [(qid, docs[qid]) for qid, docs in qrels.items() if qid in docs]
    return sorted(pairs, key=lambda p: natural_key(p[0]))
