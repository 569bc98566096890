"""BM25 on Lucene through Anserini (the engine inside Pyserini), flat or multifield.

Indexing feeds documents to Anserini's SimpleIndexer in batches. Two search engines give
the same rankings:

- ``engine="numpy"`` (default): Lucene's BM25 re-implemented over postings exported once
  from the Lucene index into numpy arrays (cached in the same cache entry as the index).
  Scores are computed with Lucene's own float32 arithmetic, lossy length norms, idf, query
  term weights and tie-breaking, so the run equals Anserini's; only query analysis crosses
  the Java bridge (one call per query), which makes it tens of times faster at 1000 hits.
- ``engine="anserini"``: Anserini's SearchCollection on the Java side, writing a TREC run
  file that is read back in one pass (no per-hit bridge crossings, unlike Pyserini's
  ``batch_search``). The reference the numpy engine is tested against.
"""

from __future__ import annotations

import json
import logging
import math
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from rankbench.harness import cache, java
from rankbench.harness.components import Retriever
from rankbench.harness.errors import ConfigError, DataError
from rankbench.harness.memory import check_memory
from rankbench.harness.runfile import read_trec_run
from rankbench.harness.types import Corpus, Doc, Query, Run
from rankbench.retrievers.lucene_exact import (
    POSTINGS_FORMAT,
    LuceneBM25,
    QueryAnalyzer,
    adjust_score_ties,
    engine_memory,
    export_memory,
    export_postings,
)

log = logging.getLogger(__name__)

_BATCH = 2000
_WHITESPACE = re.compile(r"\s+")
_ENGINES = ("numpy", "anserini")
_WHAT = {"lucene": "Lucene index", "bm25-postings": "exported postings"}  # cache folders, for the log
_REMEDIES = (
    "Lower retriever.threads (each thread holds its own accumulators), or use retriever.engine=anserini "
    "(Lucene's own search; its memory is java.heap), or raise retriever.memory_limit if you know better."
)


class BM25(Retriever):
    """Lucene BM25; ``multifield`` indexes title and text as separate fields."""

    # numpy and anserini give the same run (tests/test_bm25_fast.py); java holds the JVM's heap.
    RUNTIME_KEYS = frozenset({"engine", "memory_limit", "java"})

    # Bump when a code change alters runs, so cached first-stage runs are not reused.
    # 2: the multifield index now holds the title field.
    CACHE_VERSION = 2

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
        engine: str = "numpy",
        memory_limit: str | int = "auto",
        java: dict | None = None,
    ):
        if k1 < 0 or not 0 <= b <= 1:
            raise ConfigError(f"retriever.k1 must be >= 0 and retriever.b in [0, 1], got k1={k1} b={b}")
        if hits < 1:
            raise ConfigError(f"retriever.hits must be >= 1, got {hits}")
        if engine not in _ENGINES:
            raise ConfigError(f"retriever.engine must be one of {', '.join(_ENGINES)}, got {engine!r}")
        self.k1, self.b, self.hits = k1, b, hits
        self.multifield = multifield
        self.field_weights = dict(field_weights or {"contents": 1.0, "title": 1.0})
        unknown = set(self.field_weights) - {"contents", "title"}
        if multifield and unknown:
            raise ConfigError(f"retriever.field_weights names unindexed fields {sorted(unknown)}; use contents, title")
        if multifield and any(w <= 0 for w in self.field_weights.values()):
            raise ConfigError(f"retriever.field_weights must be > 0, got {self.field_weights}")
        self.remove_query = remove_query
        self.threads = threads
        self.name = name
        self.engine = engine
        self.memory_limit = memory_limit
        self.index_dir: Path | None = None
        self.postings_dir: Path | None = None  # the numpy engine's exported postings
        self._scorer: LuceneBM25 | None = None
        self.heap = (java or {}).get("heap", "2g")  # -Xmx of the JVM that runs Lucene
        self.build_stats: dict[str, float] = {}  # build timings, when index() built rather than reused

    def stats(self) -> dict[str, float]:
        return self.build_stats

    def index(self, corpus: Corpus, cache_dir: Path) -> None:
        """Reuse or build (atomically) the Lucene index, and for the numpy engine its exported postings.

        Two cache entries, so an interrupted export never costs the indexing again, and the
        anserini engine never pays for an export it does not read.
        """
        self.build_stats = {}
        java.configure(heap=self.heap, crash_dir=cache_dir)
        index_key = {
            "kind": "lucene-index",
            "corpus": corpus.fingerprint,
            "layout": "multifield" if self.multifield else "flat",
            "analyzer": "anserini-default-english-porter",
            "anserini": Path(java.anserini_jar()).name,
            "fields": ["title"] if self.multifield else [],
            "stored": "freqs-norms-only",  # no positions, document vectors or raw JSON
        }
        found = self._cached(cache_dir / "lucene", index_key, "lucene_index_s", lambda out: self._build(corpus, out))
        self.index_dir, self.postings_dir = found, None
        self._scorer = None
        if self.engine != "numpy":
            return
        postings_key = {
            "kind": "lucene-postings",
            "index": index_key,
            "format": POSTINGS_FORMAT,
            "fields": self._fields(),
        }
        postings = self._cached(cache_dir / "bm25-postings", postings_key, "export_s", self._exporter(found))
        needed = engine_memory(postings, self.threads)
        check_memory(needed, self.memory_limit, "BM25 search (engine=numpy)", "retriever.memory_limit", _REMEDIES)
        weights = dict(self.field_weights) if self.multifield else {"contents": 1.0}
        self.postings_dir = postings
        self._scorer = LuceneBM25(postings, self.k1, self.b, weights, self.threads)
        self.build_stats["postings"] = self._scorer.num_postings

    def _exporter(self, index_dir: Path) -> Callable[[Path], None]:
        def export(out: Path) -> None:
            needed = export_memory(index_dir)
            check_memory(needed, self.memory_limit, "exporting postings", "retriever.memory_limit", _REMEDIES)
            export_postings(index_dir, out, self._fields())

        return export

    def _cached(self, root: Path, key: dict[str, Any], timing: str, make: Callable[[Path], None]) -> Path:
        """The verified entry for ``key`` under ``root``, built with ``make(folder)`` (and timed) if missing."""
        with cache.locked(root, key):
            found = cache.lookup(root, key)
            if found is None:
                with cache.build(root, key) as tmp:
                    started = time.perf_counter()
                    make(tmp / "data")
                    self.build_stats[timing] = time.perf_counter() - started
                found = cache.lookup(root, key)
                assert found is not None, f"freshly built {root.name} entry failed verification"
            else:
                log.info("reusing %s %s", _WHAT[root.name], found)
        return found / "data"

    def _fields(self) -> list[str]:
        """Lucene fields indexed and exported: ``contents`` always, ``title`` in the multifield layout."""
        return ["contents", "title"] if self.multifield else ["contents"]

    def _build(self, corpus: Corpus, index_dir: Path) -> None:
        # Frequencies and norms are all BM25 reads: no positions, document vectors or raw JSON
        # (at 8.8M passages they would double the index for nothing; texts come from the corpus).
        args = ["-index", str(index_dir), "-input", "", "-collection", "JsonCollection", "-threads", str(self.threads)]
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
        if self._scorer is not None:
            return self._retrieve_numpy(queries)
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

    def _retrieve_numpy(self, queries: list[Query]) -> Run:
        scorer = self._scorer
        assert scorer is not None
        analyze = QueryAnalyzer.shared()  # the JVM, in this thread; scoring then runs on `threads` threads
        analysed = [analyze(q.text) for q in queries]
        run: Run = {}
        with tqdm(total=len(queries), unit="query", desc=f"search {self.name}", mininterval=0.5) as bar:

            def finish(i: int, docs: np.ndarray, scores: np.ndarray) -> None:
                qid, docids = queries[i].qid, scorer.docids(docs)
                hits = list(zip(docids, adjust_score_ties(scores).tolist(), strict=True))
                if self.remove_query and qid in docids:  # after the cut and the tie adjustment, as Anserini
                    del hits[docids.index(qid)]
                run[qid] = hits
                bar.update(1)

            scorer.search_many(analysed, self.hits, finish)
        return {q.qid: run[q.qid] for q in queries}

    def _search(self, queries: list[Query], tmp: Path) -> Run:
        topics, output = tmp / "topics.tsv", tmp / "run.trec"
        lines = []
        for q in queries:
            if _WHITESPACE.search(q.qid):
                raise DataError(f"query id {q.qid!r} contains whitespace; TREC run files cannot hold it")
            text = _WHITESPACE.sub(" ", q.text).strip()
            if text:  # an empty query matches nothing, and Anserini's topic reader rejects it
                lines.append(f"{q.qid}\t{text}\n")
        if not lines:
            return {}
        topics.write_text("".join(lines), encoding="utf-8")
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
