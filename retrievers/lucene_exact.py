"""Lucene's BM25, exactly, in numpy: postings exported from a Lucene index, scored on the Python side.

Used by ``retrievers.bm25`` as its default engine. Only query analysis crosses the Java
bridge (one call per query), so search is tens of times faster than materialising hits
through pyjnius, with the same run as Anserini's SearchCollection (tests/test_bm25_fast.py).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from harness import cache, java
from harness.errors import DataError

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


_NO_MORE_DOCS = 2**31 - 1
_FREQS = 8  # PostingsEnum.FREQS


def export_postings(index_dir: Path, out: Path, fields: list[str]) -> None:
    """Write each field's postings (term-major, CSR) and norms from the Lucene index itself.

    Reading the index rather than re-analysing the corpus means the arrays hold exactly the
    terms, frequencies and statistics Lucene scores with. Norms are recomputed from the
    lengths and checked against the ones Lucene stored, so a mismatch fails the build
    instead of silently changing rankings.
    """
    reader = java.autoclass("io.anserini.index.IndexReaderUtils").getReader(str(index_dir))
    multi_terms = java.autoclass("org.apache.lucene.index.MultiTerms")
    multi_norms = java.autoclass("org.apache.lucene.index.MultiDocValues")
    out.mkdir(parents=True)
    try:
        n = reader.maxDoc()
        if reader.numDocs() != n:
            raise DataError(f"{index_dir} has deleted documents; rebuild it")
        stored = reader.storedFields()
        docids = [stored.document(i).get("id") for i in tqdm(range(n), unit="doc", desc="export docids", mininterval=1)]
        meta: dict[str, Any] = {"docids": docids, "fields": {}}
        for field in fields:
            terms, indptr, docs, tfs = _read_postings(reader, multi_terms.getTerms(reader, field), field)
            doc_arr, tf_arr = np.array(docs, dtype=np.int32), np.array(tfs, dtype=np.int32)
            lengths = np.bincount(doc_arr, weights=tf_arr, minlength=n).astype(np.int64)
            norms = encode_lengths(lengths)
            _check_norms(reader, multi_norms, field, norms, lengths)
            doc_count, total = reader.getDocCount(field), reader.getSumTotalTermFreq(field)
            if doc_count != int((lengths > 0).sum()) or total != int(lengths.sum()):
                raise DataError(f"{index_dir}: field {field!r} statistics disagree with its postings")
            np.savez(
                out / f"{field}.npz", indptr=np.array(indptr, dtype=np.int64), docs=doc_arr, tf=tf_arr, norms=norms
            )
            meta["fields"][field] = {"terms": terms, "doc_count": doc_count, "sum_total_term_freq": total}
        cache.write_text_atomic(out / "meta.json", json.dumps(meta))
    finally:
        reader.close()


def _read_postings(reader: Any, lucene_terms: Any, field: str) -> tuple[list[str], list[int], list[int], list[int]]:
    """One field's terms and CSR postings (indptr, docs, tfs), with a progress bar over its postings."""
    terms: list[str] = []
    indptr, docs, tfs = [0], [], []
    enum = lucene_terms.iterator() if lucene_terms is not None else None
    postings = None
    total = reader.getSumDocFreq(field)
    with tqdm(total=total, unit="posting", unit_scale=True, desc=f"export {field} postings", mininterval=1) as bar:
        while enum is not None and (term := enum.next()) is not None:
            terms.append(term.utf8ToString())
            postings = enum.postings(postings, _FREQS)
            while (doc := postings.nextDoc()) != _NO_MORE_DOCS:
                docs.append(doc)
                tfs.append(postings.freq())
            bar.update(len(docs) - indptr[-1])
            indptr.append(len(docs))
    return terms, indptr, docs, tfs


def _check_norms(reader: Any, multi_norms: Any, field: str, norms: np.ndarray, lengths: np.ndarray) -> None:
    values = multi_norms.getNormValues(reader, field)
    stored = np.zeros(len(norms), dtype=np.uint8)
    while values is not None and (doc := values.nextDoc()) != _NO_MORE_DOCS:
        stored[doc] = values.longValue() & 0xFF  # the norm is a byte, sign-extended to a long
    has = lengths > 0
    bad = np.flatnonzero(has & (stored != norms))
    if len(bad):
        d = int(bad[0])
        raise DataError(
            f"field {field!r}: {len(bad)} documents whose Lucene length norm differs from SmallFloat.intToByte4 "
            f"of their length (doc {d}: length {lengths[d]}, ours {norms[d]}, Lucene {stored[d]})"
        )


@dataclass
class _FieldPostings:
    """One field's postings with Lucene's per-posting BM25 score at boost 1 precomputed."""

    rows: dict[str, int]
    indptr: np.ndarray
    docs: np.ndarray
    tf: np.ndarray  # float32, as Lucene passes freq to the scorer
    norm_inverse: np.ndarray  # float32 cache[norm] per posting
    idf: np.ndarray  # float32 per term
    unit_scores: np.ndarray  # float32 score per posting when weight == idf


class LuceneBM25:
    """Top-k BM25 over exported postings, bit-for-bit Lucene's scores and order."""

    def __init__(self, folder: Path, k1: float, b: float, field_weights: dict[str, float]):
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        self.docids: list[str] = meta["docids"]
        n = len(self.docids)
        # Rank of each document's id in string order: the tie-break key (BytesRef order == str order).
        self._id_rank = np.empty(n, dtype=np.int64)
        self._id_rank[sorted(range(n), key=self.docids.__getitem__)] = np.arange(n)
        self._acc = np.zeros(n, dtype=np.float64)
        self._field_acc = np.zeros(n, dtype=np.float64)
        self.fields: list[tuple[_FieldPostings, np.float32]] = []
        for field, weight in field_weights.items():
            info = meta["fields"][field]
            arrays = np.load(folder / f"{field}.npz")
            indptr, docs = arrays["indptr"], arrays["docs"]
            tf = arrays["tf"].astype(np.float32)
            doc_count = info["doc_count"]
            avgdl = np.float32(info["sum_total_term_freq"] / doc_count) if doc_count else np.float32(1)
            norm_inverse = lucene_norm_inverse(k1, b, avgdl)[arrays["norms"][docs]]
            idf = lucene_idf(doc_count, np.diff(indptr))
            idf_per_posting = np.repeat(idf, np.diff(indptr))
            unit = idf_per_posting - idf_per_posting / (np.float32(1) + tf * norm_inverse)
            rows = {t: i for i, t in enumerate(info["terms"])}
            self.fields.append((_FieldPostings(rows, indptr, docs, tf, norm_inverse, idf, unit), np.float32(weight)))

    def search(self, terms: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """The top ``k`` documents for analysed query ``terms``: (doc numbers, float32 scores), Lucene's order."""
        counts = Counter(terms)
        acc, touched = self._acc, []
        for postings, weight in self.fields:
            # A field query boosted by exactly 1 is flattened into the top-level disjunction by
            # Lucene's rewrite; any other boost keeps it a nested query whose sum is rounded to float.
            nested = weight != np.float32(1)
            target = self._field_acc if nested else acc
            field_touched = []
            for term, count in counts.items():
                row = postings.rows.get(term)
                if row is None:
                    continue
                lo, hi = postings.indptr[row], postings.indptr[row + 1]
                docs = postings.docs[lo:hi]
                boost = np.float32(count) * weight
                if boost == np.float32(1):
                    scores = postings.unit_scores[lo:hi]
                else:
                    w = boost * postings.idf[row]
                    scores = w - w / (np.float32(1) + postings.tf[lo:hi] * postings.norm_inverse[lo:hi])
                target[docs] += scores  # distinct docs within one term: plain fancy-index add is safe
                field_touched.append(docs)
            if nested and field_touched:
                docs = np.unique(np.concatenate(field_touched))
                acc[docs] += target[docs].astype(np.float32)
                target[docs] = 0.0
            touched += field_touched
        if not touched:
            return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32)
        candidates = np.unique(np.concatenate(touched))
        scores32 = acc[candidates].astype(np.float32)
        acc[candidates] = 0.0
        if len(candidates) > k:  # keep every document tied with the k-th score, then order exactly
            kth = np.partition(scores32, len(scores32) - k)[len(scores32) - k]
            keep = scores32 >= kth
            candidates, scores32 = candidates[keep], scores32[keep]
        order = np.lexsort((self._id_rank[candidates], -scores32))[:k]
        return candidates[order], scores32[order]


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
