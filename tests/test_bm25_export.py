"""The postings export and the pruned search path of the numpy BM25 engine.

The export runs in rankbench's Java helper; here it is checked against the same index read
through pyjnius one posting at a time (Lucene's own API, the slow way). The pruned top-k is
checked against the exhaustive kernel, and the memory refusal against its config key.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from rankbench.harness import java
from rankbench.harness.datasets import BeirCorpus
from rankbench.harness.errors import ConfigError
from rankbench.harness.readers import BeirSource
from rankbench.harness.types import Doc, Query
from rankbench.retrievers import lucene_export
from rankbench.retrievers.bm25 import BM25
from rankbench.retrievers.lucene_exact import LuceneBM25, QueryAnalyzer

JAVA = Path(__file__).resolve().parents[1] / "retrievers" / "java" / "rankbench"


def test_shipped_class_was_compiled_from_this_source():
    """``make java-classes`` rebuilds the class and records its source's digest; an edit without it fails here."""
    source = hashlib.sha256((JAVA / "PostingsExport.java").read_bytes()).hexdigest()
    assert (JAVA / "PostingsExport.sha256").read_text().strip() == source
    assert (JAVA / "PostingsExport.class").stat().st_size > 0


def _slow_postings(reader, field: str) -> tuple[list[str], list[int], list[int], list[int]]:
    """Terms and CSR postings read through the bridge one posting at a time."""
    terms, indptr, docs, tfs = [], [0], [], []
    lucene_terms = java.autoclass("org.apache.lucene.index.MultiTerms").getTerms(reader, field)
    enum, postings = lucene_terms.iterator(), None
    while (term := enum.next()) is not None:
        terms.append(term.utf8ToString())
        postings = enum.postings(postings, 8)
        while (doc := postings.nextDoc()) != 2**31 - 1:
            docs.append(doc)
            tfs.append(postings.freq())
        indptr.append(len(docs))
    return terms, indptr, docs, tfs


class _Docs(list):
    source, fingerprint = "export-test", "export-test"

    def count_hint(self) -> int:
        return len(self)


def test_export_equals_lucene_read_one_posting_at_a_time(tmp_path: Path):
    words = ["salmon", "river", "café", "naïve", "ünïcode", "smörgåsbord", "data", "data", "data", "retrieval"]
    rng = np.random.default_rng(7)
    docs = _Docs(Doc(f"doc-{i:03d}", "", " ".join(rng.choice(words, rng.integers(1, 30)))) for i in range(120))
    docs.append(Doc("ид-кириллица", "", "river river"))
    BM25()._build(docs, tmp_path / "index")
    reader = java.autoclass("io.anserini.index.IndexReaderUtils").getReader(str(tmp_path / "index"))
    exported = lucene_export.export_field(reader, "contents", tmp_path / "scratch")
    terms, indptr, slow_docs, tfs = _slow_postings(reader, "contents")
    bounds = exported.term_offsets.tolist()
    assert [exported.terms[a:b].decode() for a, b in itertools.pairwise(bounds)] == terms and "café" in terms
    assert exported.indptr.tolist() == indptr
    assert np.fromfile(exported.docs, dtype="<i4").tolist() == slow_docs
    assert np.fromfile(exported.tf, dtype="<i4").tolist() == tfs
    assert sorted(p.name for p in (tmp_path / "scratch").iterdir()) == ["docs", "tf"]  # the rest is read
    stored = reader.storedFields()
    ids, offsets = lucene_export.export_docids(reader, tmp_path)
    found = [ids[a:b].decode() for a, b in itertools.pairwise(offsets.tolist())]
    assert found == [stored.document(i).get("id") for i in range(len(docs))]
    assert "ид-кириллица" in found


@pytest.fixture(scope="module")
def scifact_postings(tmp_path_factory):
    from tests.test_bm25_fast import SHARED_DATA

    source = SHARED_DATA / "beir" / "scifact.zip"
    if not source.is_file():
        pytest.skip(f"SciFact not found under {SHARED_DATA}")
    from rankbench.harness.datasets import load_dataset

    cfg = {"name": "scifact", "beir_name": "scifact", "split": "test", "path": None}
    dataset = load_dataset({**cfg, "ir_datasets_id": "beir/scifact/test", "topics": None, "qrels": None}, SHARED_DATA)
    bm25 = BM25(hits=10)
    bm25.index(dataset.corpus, tmp_path_factory.mktemp("cache"))
    return bm25, dataset


def _numpy_top_k(scorer: LuceneBM25, counts: Counter, k: int) -> tuple[list[int], list[float]]:
    """The same query scored with plain numpy: Lucene's formula per posting, np.add.at, a full sort."""
    field = scorer.fields[0]
    acc = np.zeros(scorer.num_docs)
    for term, count in counts.items():
        row = field.terms.row(term)
        if row is None:
            continue
        lo, hi = field.indptr[row], field.indptr[row + 1]
        docs = field.docs[lo:hi]
        w = np.float32(count) * field.idf[row]
        one = np.float32(1)
        np.add.at(acc, docs, w - w / (one + field.tf[lo:hi].astype(np.float32) * field.cache[field.norms[docs]]))
    touched = np.flatnonzero(acc)
    scores = acc[touched].astype(np.float32)
    order = np.lexsort((scorer._id_rank[touched], -scores))[:k]
    return touched[order].tolist(), scores[order].tolist()


@pytest.mark.parametrize("k", [1, 10, 100, 1000])
def test_kernel_equals_plain_numpy_scoring(scifact_postings, k: int):
    """Same documents, scores and order; repeated query words (boost 2) take the computed-score branch."""
    bm25, dataset = scifact_postings
    scorer: LuceneBM25 = bm25._scorer
    analyze = QueryAnalyzer.shared()
    queries = [q.text for q in dataset.queries[:60]] + ["cancer cancer cells", "vitamin d vitamin d deficiency"]
    for text in queries:
        counts = Counter(analyze(text))
        docs, scores = scorer.search(analyze(text), k)
        assert (docs.tolist(), scores.tolist()) == _numpy_top_k(scorer, counts, k), text
    assert not scorer._scratch[0].acc.any()  # the accumulators are left clean for the next query


def test_sparse_and_dense_collection_agree(scifact_postings):
    """top_k walks a few postings again or scans every document: both find the same top k."""
    from rankbench.retrievers import bm25_kernel

    bm25, dataset = scifact_postings
    scorer: LuceneBM25 = bm25._scorer
    field, acc = scorer.fields[0], scorer._scratch[0].acc
    rows, weights = scorer._clauses(field, Counter(QueryAnalyzer.shared()(dataset.queries[0].text)))
    found = []
    for force_scan in (False, True):
        added = bm25_kernel.add_terms(field.docs, field.tf, field.unit, field.indptr, rows, weights,
                                      weights == field.idf[rows], field.cache, field.norms, acc)  # fmt: skip
        assert added > 0
        postings = acc.shape[0] if force_scan else 0  # 0: "few postings", so walk them
        docs, scores = bm25_kernel.top_k(100, acc, field.docs, field.indptr, rows, postings, scorer._id_rank)
        found.append(sorted(zip(docs.tolist(), scores.tolist(), strict=True)))
        assert not acc.any()
    assert found[0] == found[1] and len(found[0]) == 100


def test_memory_refusal_names_the_setting_and_keeps_the_index(tiny_beir: Path, tmp_path: Path):
    corpus = BeirCorpus(BeirSource(tiny_beir))
    with pytest.raises(ConfigError, match=r"retriever\.memory_limit=100B.*retriever\.threads.*engine=anserini"):
        BM25(memory_limit="100B").index(corpus, tmp_path)
    kept = BM25(engine="anserini")
    kept.index(corpus, tmp_path)
    assert "lucene_index_s" not in kept.stats()  # the refused run's Lucene index was kept and reused
    roomy = BM25(memory_limit="1GB")
    roomy.index(corpus, tmp_path)
    assert roomy.retrieve([Query("q1", "do goldfish grow")])["q1"][0][0] == "d1"


def test_memory_limit_that_is_not_a_size_is_refused(tiny_beir: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match=r"retriever\.memory_limit must be 'auto' or a size"):
        BM25(memory_limit="lots").index(BeirCorpus(BeirSource(tiny_beir)), tmp_path)
