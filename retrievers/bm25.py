"""BM25 on Lucene through Anserini (the engine inside Pyserini), flat or multifield.

Indexing feeds documents to Anserini's SimpleIndexer in batches. Search runs Anserini's
own SearchCollection on the Java side, which writes a TREC run file that is read back in
one pass: this avoids materialising every hit through the Java bridge, the cost that
dominates Pyserini's ``batch_search`` at 1000 hits, and gives identical rankings.
"""

from __future__ import annotations

import json
import logging
import math
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from tqdm import tqdm

from harness import cache, java
from harness.errors import ConfigError, DataError
from harness.runfile import read_trec_run
from harness.types import Corpus, Doc, Query, Run

log = logging.getLogger(__name__)

_BATCH = 2000
_WHITESPACE = re.compile(r"\s+")


class BM25:
    """Lucene BM25; ``multifield`` indexes title and text as separate fields."""

    def __init__(
        self,
        k1: float = 0.9,
        b: float = 0.4,
        hits: int = 1000,
        multifield: bool = False,
        field_weights: dict[str, float] | None = None,
        remove_query: bool = False,
        threads: int = 2,
        name: str = "bm25",
    ):
        if k1 < 0 or not 0 <= b <= 1:
            raise ConfigError(f"retriever.k1 must be >= 0 and retriever.b in [0, 1], got k1={k1} b={b}")
        if hits < 1:
            raise ConfigError(f"retriever.hits must be >= 1, got {hits}")
        self.k1, self.b, self.hits = k1, b, hits
        self.multifield = multifield
        self.field_weights = dict(field_weights or {"contents": 1.0, "title": 1.0})
        self.remove_query = remove_query
        self.threads = threads
        self.name = name
        self.index_dir: Path | None = None

    def index(self, corpus: Corpus, cache_dir: Path) -> None:
        """Reuse the verified Lucene index for this corpus, or build it atomically."""
        key = {
            "kind": "lucene-index",
            "corpus": corpus.fingerprint,
            "layout": "multifield" if self.multifield else "flat",
            "analyzer": "anserini-default-english-porter",
            "anserini": Path(java.anserini_jar()).name,
            "fields": ["title"] if self.multifield else [],
        }
        root = cache_dir / "lucene"
        found = cache.lookup(root, key)
        if found is None:
            with cache.build(root, key) as tmp:
                self._build(corpus, tmp / "index")
            found = cache.lookup(root, key)
            assert found is not None, "freshly built index failed verification"
        else:
            log.info("reusing Lucene index %s", found)
        self.index_dir = found / "index"

    def _build(self, corpus: Corpus, index_dir: Path) -> None:
        args = ["-index", str(index_dir), "-storePositions", "-storeDocvectors", "-storeRaw"]
        args += ["-input", "", "-collection", "JsonCollection", "-threads", str(self.threads)]
        if self.multifield:  # without -fields Anserini indexes only "contents" and drops the title
            args += ["-fields", "title"]
        indexer = java.autoclass("io.anserini.index.SimpleIndexer")(args)
        added = seen = 0
        with tqdm(total=corpus.count_hint(), unit="doc", desc=f"index {corpus.source}") as bar:
            for batch in _batches(map(self._json, corpus), _BATCH):
                added += indexer.addRawDocuments(batch)
                seen += len(batch)
                bar.update(len(batch))
        indexer.close()
        if seen > added:  # Anserini skips documents with no text at all
            log.warning(
                "%d of %d documents have no indexable text and cannot be retrieved",
                seen - added,
                seen,
            )

    def _json(self, doc: Doc) -> str:
        if self.multifield:
            return json.dumps({"id": doc.docid, "title": doc.title, "contents": doc.text})
        contents = f"{doc.title} {doc.text}" if doc.title else doc.text
        return json.dumps({"id": doc.docid, "contents": contents})

    def retrieve(self, queries: list[Query]) -> Run:
        """Top ``hits`` documents per query, searched in chunks for a live progress bar."""
        if self.index_dir is None:
            raise RuntimeError("BM25.retrieve called before index()")
        run: Run = {}
        chunk = max(1, min(256, math.ceil(len(queries) / 20)))
        with (
            tempfile.TemporaryDirectory(prefix="rankbench-bm25-") as tmp,
            tqdm(total=len(queries), unit="query", desc=f"search {self.name}") as bar,
        ):
            for start in range(0, len(queries), chunk):
                part = queries[start : start + chunk]
                run.update(self._search(part, Path(tmp)))
                bar.update(len(part))
        for q in queries:
            run.setdefault(q.qid, [])
        return run

    def _search(self, queries: list[Query], tmp: Path) -> Run:
        topics, output = tmp / "topics.tsv", tmp / "run.trec"
        with open(topics, "w", encoding="utf-8") as f:
            for q in queries:
                if _WHITESPACE.search(q.qid):
                    raise DataError(f"query id {q.qid!r} contains whitespace; TREC run files cannot hold it")
                f.write(f"{q.qid}\t{_WHITESPACE.sub(' ', q.text).strip()}\n")
        args = ["-index", str(self.index_dir), "-topics", str(topics), "-topicReader", "TsvString"]
        args += ["-output", str(output), "-hits", str(self.hits), "-threads", str(self.threads)]
        args += ["-bm25", "-bm25.k1", str(self.k1), "-bm25.b", str(self.b), "-quiet"]
        if self.remove_query:
            args.append("-removeQuery")
        if self.multifield:
            args += ["-fields", *(f"{k}={v}" for k, v in self.field_weights.items())]
        search_args = java.autoclass("io.anserini.search.SearchCollection$Args")()
        java.autoclass("org.kohsuke.args4j.CmdLineParser")(search_args).parseArgument(java.java_list(args))
        searcher = java.autoclass("io.anserini.search.SearchCollection")(search_args)
        try:
            searcher.run()
        finally:
            searcher.close()
        return read_trec_run(output)


def _batches(items: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
