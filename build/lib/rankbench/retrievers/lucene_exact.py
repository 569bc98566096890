"""Lucene's BM25, exactly, in numpy: postings exported from a Lucene index, scored on the Python side.

Used by ``rankbench.retrievers.bm25`` as its default engine. Only query analysis crosses the Java
bridge (one call per query), so search is tens of times faster than materialising hits
through pyjnius, with the same run as Anserini's SearchCollection (tests/test_bm25_fast.py).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rankbench.harness import cache, java
from rankbench.harness.errors import DataError
from rankbench.retrievers import bm25_kernel, lucene_export

# This module reproduces, in numpy float32, what Lucene 9.9's BM25Similarity and
# BooleanQuery compute for the queries Anserini's SearchCollection builds
# (BagOfWordsQueryGenerator: one SHOULD clause per distinct analysed term, boosted by its count;
# with -fields, one such query per field, boosted by the field weight):
#
#   idf      = (float) log(1 + (docCount - df + 0.5) / (df + 0.5))          in double, then float
#   avgdl    = (float) (sumTotalTermFreq / (double) docCount)
#   cache[i] = 1f / (k1 * ((1 - b) + b * byte4ToInt(i) / avgdl))             float ops, left to right
#   weight   = boost * idf                                                     boost = count * field weight
#   score    = weight - weight / (1f + freq * cache[norm])                     float ops
#   query    = (float) (sum of clause scores in double)                        BooleanScorer's bucket
#
# A document's norm is SmallFloat.intToByte4 of its field length (tokens after analysis), so
# documents of nearby lengths share one length value. Ties are broken by the "id" field
# ascending (SearchCollection sorts by score, then id).

# SmallFloat's 4-bit-mantissa int encoding: 24 lengths (0-23) are stored exactly, the rest
# as 3 explicit mantissa bits plus a shift, so every byte value decodes to a length.
_FREE_BYTE4_VALUES = 24  # 255 - longToInt4(Integer.MAX_VALUE) = 255 - 231


def _long_to_int4(i: int) -> int:
    bits = i.bit_length()
    if bits < 4:
        return i  # "subnormal": stored as is
    shift = bits - 4
    return ((i >> shift) & 0x07) | ((shift + 1) << 3)  # drop the implicit leading 1, keep 3 bits


def _int4_to_long(i: int) -> int:
    bits, shift = i & 0x07, (i >> 3) - 1
    return bits if shift == -1 else (bits | 0x08) << shift


def int_to_byte4(length: int) -> int:
    """Lucene's ``SmallFloat.intToByte4`` as an unsigned byte (0-255): the stored length norm."""
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    if length < _FREE_BYTE4_VALUES:
        return length
    return _FREE_BYTE4_VALUES + _long_to_int4(length - _FREE_BYTE4_VALUES)


def byte4_to_int(byte: int) -> int:
    """Lucene's ``SmallFloat.byte4ToInt`` for an unsigned byte: the length a norm stands for."""
    if byte < _FREE_BYTE4_VALUES:
        return byte
    return min(_FREE_BYTE4_VALUES + _int4_to_long(byte - _FREE_BYTE4_VALUES), 2**31 - 1)


_LENGTH_TABLE = np.array([byte4_to_int(i) for i in range(256)], dtype=np.float32)


def encode_lengths(lengths: np.ndarray) -> np.ndarray:
    """``int_to_byte4`` over an array of field lengths (few distinct values: memoised)."""
    unique, inverse = np.unique(lengths, return_inverse=True)
    codes = np.array([int_to_byte4(int(v)) for v in unique], dtype=np.uint8)
    return codes[inverse].reshape(lengths.shape)


def lucene_idf(doc_count: int, doc_freq: np.ndarray) -> np.ndarray:
    """BM25Similarity.idf: computed in double, rounded to float."""
    df = doc_freq.astype(np.float64)
    return np.log(1.0 + (doc_count - df + 0.5) / (df + 0.5)).astype(np.float32)


def lucene_norm_inverse(k1: float, b: float, avgdl: np.float32) -> np.ndarray:
    """BM25Similarity's per-norm cache, ``1 / (k1 * (1 - b + b * length / avgdl))``, in float ops."""
    one, k1f, bf = np.float32(1), np.float32(k1), np.float32(b)
    return one / (k1f * ((one - bf) + bf * _LENGTH_TABLE / avgdl))


POSTINGS_FORMAT = 2  # bump when the exported files change meaning or layout


def export_postings(index_dir: Path, out: Path, fields: list[str]) -> None:
    """Write each field's postings (term-major, CSR), norms and terms, and the document ids, from the Lucene index.

    Reading the index rather than re-analysing the corpus means the arrays hold exactly the
    terms, frequencies and statistics Lucene scores with. Each document's length is recomputed
    from the postings and its norm checked against the one Lucene stored, so a mismatch fails
    the build instead of silently changing rankings. Files are raw little-endian arrays, memory
    mapped at search time; ``meta.json`` names their dtypes and sizes.
    """
    reader = java.autoclass("io.anserini.index.IndexReaderUtils").getReader(str(index_dir))
    out.mkdir(parents=True)
    try:
        n = reader.maxDoc()
        if reader.numDocs() != n:
            raise DataError(f"{index_dir} has deleted documents; rebuild it")
        meta: dict[str, Any] = {"format": POSTINGS_FORMAT, "num_docs": n, "fields": {}}
        _write_docids(*lucene_export.export_docids(reader, out), out)
        for field in fields:
            meta["fields"][field] = _export_field(reader, field, out, n, index_dir)
        cache.write_text_atomic(out / "meta.json", json.dumps(meta))
    finally:
        reader.close()


def _write_docids(ids: bytes, offsets: np.ndarray, out: Path) -> None:
    """``docids.bin`` + ``docid_offsets``, and ``id_rank``: each document's place in id (byte) order, the tie-break."""
    (out / "docids.bin").write_bytes(ids)
    offsets.tofile(out / "docid_offsets.i64")
    bounds = offsets.tolist()
    keys = np.array([ids[bounds[i] : bounds[i + 1]] for i in range(len(bounds) - 1)], dtype=bytes)
    order = np.argsort(keys, kind="stable")  # "S" compares bytes, as Lucene's BytesRef does
    rank = np.empty(len(order), dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    rank.tofile(out / "id_rank.i32")


def _export_field(reader: Any, field: str, out: Path, n: int, index_dir: Path) -> dict[str, Any]:
    """One field's files; the postings stream through memory maps, never loaded whole."""
    postings = lucene_export.export_field(reader, field, out / "scratch")
    docs = np.memmap(postings.docs, dtype="<i4", mode="r")
    tf = np.memmap(postings.tf, dtype="<i4", mode="r")
    lengths = bm25_kernel.doc_lengths(docs.view(np.ndarray), tf.view(np.ndarray), n)
    norms = encode_lengths(lengths)
    _check_norms(field, norms, lengths, lucene_export.export_norms(reader, field, out))
    doc_count, total = reader.getDocCount(field), reader.getSumTotalTermFreq(field)
    if doc_count != int((lengths > 0).sum()) or total != int(lengths.sum()):
        raise DataError(f"{index_dir}: field {field!r} statistics disagree with its postings")
    tf_dtype = "u2" if tf.size == 0 or int(tf.max()) <= np.iinfo(np.uint16).max else "i4"
    with open(out / f"{field}.tf.{tf_dtype}", "wb") as f:
        for start in range(0, tf.size, 1 << 24):
            tf[start : start + (1 << 24)].astype(tf_dtype).tofile(f)
    del docs, tf
    postings.docs.replace(out / f"{field}.docs.i4")  # already little-endian int32: kept as written
    postings.tf.unlink()
    (out / "scratch").rmdir()
    postings.indptr.tofile(out / f"{field}.indptr.i8")
    norms.tofile(out / f"{field}.norms.u1")
    (out / f"{field}.terms.bin").write_bytes(postings.terms)
    postings.term_offsets.tofile(out / f"{field}.term_offsets.i8")
    return {
        "doc_count": doc_count,
        "sum_total_term_freq": total,
        "num_terms": len(postings.term_offsets) - 1,
        "num_postings": int(postings.indptr[-1]),
        "tf_dtype": tf_dtype,
    }


def _check_norms(field: str, norms: np.ndarray, lengths: np.ndarray, stored: np.ndarray) -> None:
    has = lengths > 0
    bad = np.flatnonzero(has & (stored != norms))
    if len(bad):
        d = int(bad[0])
        raise DataError(
            f"field {field!r}: {len(bad)} documents whose Lucene length norm differs from SmallFloat.intToByte4 "
            f"of their length (doc {d}: length {lengths[d]}, ours {norms[d]}, Lucene {stored[d]})"
        )


def _map(path: Path, dtype: str, count: int) -> np.ndarray:
    """A read-only memory map of a raw little-endian array (a plain ndarray view, as numba wants)."""
    if count == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=np.dtype(dtype).newbyteorder("<"), mode="r", shape=(count,)).view(np.ndarray)


class TermDictionary:
    """Term -> row of a field's postings (terms are stored in Lucene's UTF-8 byte order).

    A plain dict: ~100 bytes a term (250 MB for MS MARCO's 2.7M terms), built in seconds, and a
    lookup costs a hash instead of a binary search's twenty byte-string comparisons, which at
    SciFact's size was most of a query's time.
    """

    def __init__(self, blob: bytes, offsets: np.ndarray):
        ends = offsets.tolist()
        self._rows = {blob[ends[i] : ends[i + 1]].decode("utf-8"): i for i in range(len(ends) - 1)}

    def __len__(self) -> int:
        return len(self._rows)

    def row(self, term: str) -> int | None:
        return self._rows.get(term)


@dataclass
class _Field:
    """One field's memory-mapped postings and what scoring it needs."""

    terms: TermDictionary
    indptr: np.ndarray
    docs: np.ndarray
    tf: np.ndarray
    norms: np.ndarray  # uint8 per document
    cache: np.ndarray  # float32 per norm byte: 1 / (k1 * (1 - b + b * length / avgdl))
    idf: np.ndarray  # float32 per term
    weight: np.float32
    unit: np.ndarray  # float32 per posting: its score at boost 1


class _Scratch:
    """A thread's accumulators: a double per document, as Lucene sums clause scores in double."""

    def __init__(self, n: int, flat: bool, nested: bool):
        self.acc = np.zeros(min(n, bm25_kernel.BLOCK) if flat else n)  # flat: a block at a time
        self.field_acc = np.zeros(n) if nested else None  # a boosted field's own sums


def export_memory(index_dir: Path) -> int:
    """Bytes :func:`export_postings` holds at its peak, from the Lucene index's statistics.

    Postings stream through memory maps (16M at a time: 100 MB); per document: its length (8),
    norms (2) and id as a Python bytes object while the ids are sorted (~60).
    """
    reader = java.autoclass("io.anserini.index.IndexReaderUtils").getReader(str(index_dir))
    try:
        return 100_000_000 + 70 * reader.maxDoc()
    finally:
        reader.close()


def engine_memory(folder: Path, threads: int) -> int:
    """Bytes the engine allocates; the memory-mapped postings, which the OS pages in and out, are not counted.

    Per thread: a double per document of a block (flat), or two per document (fields). Per
    document: id rank, id offset, a norm per field. Per posting: its precomputed score. Per term:
    its dictionary entry and idf.
    """
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    n, fields = meta["num_docs"], meta["fields"].values()
    per_thread = min(n, bm25_kernel.BLOCK) * 8 if len(fields) == 1 else n * 16
    per_doc = n * (4 + 8 + len(fields))
    per_posting = 4 * sum(f["num_postings"] for f in fields)
    per_term = 24 * sum(f["num_terms"] for f in fields)
    return threads * per_thread + per_doc + per_posting + per_term


class LuceneBM25:
    """Top-k BM25 over exported postings, bit-for-bit Lucene's scores and order."""

    def __init__(self, folder: Path, k1: float, b: float, field_weights: dict[str, float], threads: int = 1):
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        if meta.get("format") != POSTINGS_FORMAT:
            raise DataError(f"{folder}: postings format {meta.get('format')}, expected {POSTINGS_FORMAT}; rebuild")
        self.num_docs = n = meta["num_docs"]
        self._docid_blob = (folder / "docids.bin").read_bytes()
        self._docid_offsets = _map(folder / "docid_offsets.i64", "i8", n + 1)
        self._id_rank = _map(folder / "id_rank.i32", "i4", n)
        self._docid_strings: list[str | None] = [None] * n  # decoded on first use: a run names few documents
        self.fields = [self._field(folder, meta["fields"][f], f, k1, b, w) for f, w in field_weights.items()]
        self.num_postings = sum(len(f.docs) for f in self.fields)
        self._threads = max(1, threads)
        nested = any(f.weight != np.float32(1) for f in self.fields)
        # One field weighted 1 (flat BM25) is a plain disjunction, scored a block of documents at a time.
        self._flat = len(self.fields) == 1 and self.fields[0].weight == np.float32(1)
        self._scratch = [_Scratch(n, self._flat, nested) for _ in range(self._threads)]

    @staticmethod
    def _field(folder: Path, info: dict[str, Any], name: str, k1: float, b: float, weight: float) -> _Field:
        n_terms, n_postings = info["num_terms"], info["num_postings"]
        indptr = _map(folder / f"{name}.indptr.i8", "i8", n_terms + 1)
        doc_count = info["doc_count"]
        avgdl = np.float32(info["sum_total_term_freq"] / doc_count) if doc_count else np.float32(1)
        terms = TermDictionary(
            (folder / f"{name}.terms.bin").read_bytes(), _map(folder / f"{name}.term_offsets.i8", "i8", n_terms + 1)
        )
        docs = _map(folder / f"{name}.docs.i4", "i4", n_postings)
        tf = _map(folder / f"{name}.tf.{info['tf_dtype']}", info["tf_dtype"], n_postings)
        norms = np.fromfile(folder / f"{name}.norms.u1", dtype=np.uint8)
        cache, idf = lucene_norm_inverse(k1, b, avgdl), lucene_idf(doc_count, np.diff(indptr))
        unit = bm25_kernel.unit_scores(docs, tf, indptr, idf, cache, norms)
        return _Field(terms, indptr, docs, tf, norms, cache, idf, np.float32(weight), unit)

    def docids(self, docs: np.ndarray) -> list[str]:
        """The collection ids of Lucene document numbers ``docs``, each decoded once and then remembered."""
        known, numbers = self._docid_strings, docs.tolist()
        found = [known[d] for d in numbers]
        if None in found:
            at = np.array([d for d, docid in zip(numbers, found, strict=True) if docid is None], dtype=np.int64)
            starts, ends = self._docid_offsets[at].tolist(), self._docid_offsets[at + 1].tolist()
            for d, start, end in zip(at.tolist(), starts, ends, strict=True):
                known[d] = self._docid_blob[start:end].decode("utf-8")
            found = [known[d] for d in numbers]
        return found

    def search(self, terms: list[str], k: int, thread: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """The top ``k`` documents for analysed query ``terms``: (doc numbers, float32 scores), Lucene's order."""
        counts = Counter(terms)
        scratch = self._scratch[thread]
        if self._flat:
            field = self.fields[0]
            rows, weights = self._clauses(field, counts)
            docs, scores = bm25_kernel.flat_top_k(
                k, field.docs, field.tf, field.unit, field.indptr, rows, weights, weights == field.idf[rows],
                field.cache, field.norms, scratch.acc, self._id_rank,
            )  # fmt: skip
        else:
            docs, scores = self._fielded(counts, k, scratch)
        order = np.lexsort((self._id_rank[docs], -scores))
        return docs[order], scores[order]

    def _fielded(self, counts: Counter[str], k: int, scratch: _Scratch) -> tuple[np.ndarray, np.ndarray]:
        """Several fields, or one boosted: a field's sum may be rounded on its own, so one array for all documents."""
        postings = 0
        for field in self.fields:
            rows, weights = self._clauses(field, counts)
            # A field query boosted by exactly 1 is flattened into the top-level disjunction by
            # Lucene's rewrite; any other boost keeps it a nested query whose sum is rounded to float.
            flat = field.weight == np.float32(1)
            target = scratch.acc if flat else scratch.field_acc
            postings += bm25_kernel.add_terms(
                field.docs, field.tf, field.unit, field.indptr, rows, weights, weights == field.idf[rows],
                field.cache, field.norms, target,
            )  # fmt: skip
            if not flat:
                bm25_kernel.fold_nested(scratch.field_acc, scratch.acc)
        if len(self.fields) > 1:  # the sparse walk knows one field's postings: scan instead
            postings, rows = scratch.acc.shape[0], np.zeros(0, dtype=np.int64)
        field = self.fields[0]
        return bm25_kernel.top_k(k, scratch.acc, field.docs, field.indptr, rows, postings, self._id_rank)

    def _clauses(self, field: _Field, counts: Counter[str]) -> tuple[np.ndarray, np.ndarray]:
        """(term rows, float32 term weights) of the query's terms found in ``field``.

        Lucene's term weight: boost (query count times field weight) times idf, in float.
        """
        found = [(row, count) for term, count in counts.items() if (row := field.terms.row(term)) is not None]
        rows = np.array([r for r, _ in found], dtype=np.int64)
        boosts = np.array([np.float32(c) * field.weight for _, c in found], dtype=np.float32)
        return rows, (boosts * field.idf[rows]).astype(np.float32)

    def search_many(
        self, queries: list[list[str]], k: int, finish: Callable[[int, np.ndarray, np.ndarray], None]
    ) -> None:
        """``search`` each analysed query on ``threads`` threads; ``finish(i, docs, scores)`` takes each result.

        The kernels release the GIL, so one thread's Python (``finish`` included) runs while
        another scores.
        """

        def work(thread: int) -> None:
            for i in range(thread, len(queries), self._threads):
                finish(i, *self.search(queries[i], k, thread))

        with ThreadPoolExecutor(self._threads) as pool:
            for future in [pool.submit(work, t) for t in range(self._threads)]:
                future.result()


_TIE_GAP, _TIE_STEP = np.float32(1e-4), np.float32(1e-6)


def adjust_score_ties(scores: np.ndarray) -> np.ndarray:
    """Anserini's ScoreTiesAdjusterReranker, which SearchCollection applies to every ranking.

    Scores (float32, in rank order) are rounded to 4 decimals; a hit whose rounded score is
    within 1e-4 of the adjusted score above it is lowered by 1e-6 per such hit in a row. The
    written scores then decrease strictly, so trec_eval (which orders equal scores by docid
    descending) keeps Lucene's order. Same arithmetic as the Java loop: round in double, the
    rest in float. The loop is sequential (each hit compares with the adjusted one above);
    it is solved here by iterating the vectorised rule to its fixed point: lowering a score
    can only add ties below it, so the tied set grows until it is the sequential one.
    """
    rounded = (np.floor(scores.astype(np.float64) * 10000.0 + 0.5) / 10000.0).astype(np.float32)
    n = len(rounded)
    adjusted, tied = rounded, np.zeros(n, dtype=bool)
    positions = np.arange(n)
    while n > 1:
        now = np.zeros(n, dtype=bool)
        now[1:] = (adjusted[:-1] - rounded[1:]) <= _TIE_GAP
        if np.array_equal(now, tied):
            break
        tied = now
        run = positions - np.maximum.accumulate(np.where(tied, 0, positions))  # ties in a row ending here
        adjusted = np.where(tied, rounded - _TIE_STEP * run.astype(np.float32), rounded)
    return adjusted


class QueryAnalyzer:
    """Anserini's default English analyzer (Porter, stopwords), as SearchCollection applies it."""

    _instance: QueryAnalyzer | None = None

    def __init__(self) -> None:
        english = java.autoclass("io.anserini.analysis.DefaultEnglishAnalyzer")
        self._analyzer = english.fromArguments("porter", False, None)
        self._analyze = java.autoclass("io.anserini.analysis.AnalyzerUtils").analyze
        # One bridge call returns all tokens as JSON, instead of one call per list element.
        self._json = java.autoclass("com.fasterxml.jackson.databind.ObjectMapper")()

    @classmethod
    def shared(cls) -> QueryAnalyzer:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def __call__(self, text: str) -> list[str]:
        return json.loads(self._json.writeValueAsString(self._analyze(self._analyzer, text)))
