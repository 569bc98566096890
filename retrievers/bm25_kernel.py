"""Compiled inner loops of the numpy BM25 engine (numba): score postings, fold nested fields, pick the top k.

The arithmetic is Lucene's, operation for operation, in float32 (numba keeps float32 operands in
float32 and, without ``fastmath``, neither reorders nor fuses them into FMAs):
``score = w - w / (1 + tf * cache[norm])``, summed per document in double and rounded to float.
``nogil`` lets one Python thread per core score its own queries.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def accumulate(docs, tf, indptr, rows, weights, cache, norms, acc, seen, touched, n_touched):
    """Add each term's BM25 score (weight ``weights[i]`` for term row ``rows[i]``) into ``acc``.

    A document met for the first time is appended to ``touched``; the new count is returned.
    """
    one = np.float32(1)
    for i in range(rows.shape[0]):
        w = weights[i]
        for p in range(indptr[rows[i]], indptr[rows[i] + 1]):
            d = docs[p]
            score = w - w / (one + np.float32(tf[p]) * cache[norms[d]])
            if not seen[d]:
                seen[d] = True
                touched[n_touched] = d
                n_touched += 1
            acc[d] += score
    return n_touched


@njit(nogil=True, cache=True)
def fold_nested(field_acc, field_seen, field_touched, n_field, acc, seen, touched, n_touched):
    """Add a boosted field's per-document sums, rounded to float as Lucene's nested query does, into ``acc``."""
    for i in range(n_field):
        d = field_touched[i]
        if not seen[d]:
            seen[d] = True
            touched[n_touched] = d
            n_touched += 1
        acc[d] += np.float32(field_acc[d])
        field_acc[d] = 0.0
        field_seen[d] = False
    return n_touched


@njit(nogil=True, cache=True)
def _worse(score_a, rank_a, score_b, rank_b):
    """Lucene's order, reversed: lower score, then larger id, comes later."""
    return score_a < score_b or (score_a == score_b and rank_a > rank_b)


@njit(nogil=True, cache=True)
def top_k(k, acc, seen, touched, n_touched, id_rank):
    """The ``k`` best touched documents (score desc, id asc), unordered; resets ``acc`` and ``seen``.

    A min-heap of size ``k`` keyed on (score, id rank): most candidates fall below its root and
    cost one comparison, so selection is linear in the candidates, not a sort of them.
    """
    size = min(k, n_touched)
    heap_doc = np.empty(size, dtype=np.int32)
    heap_score = np.empty(size, dtype=np.float32)
    filled = 0
    for i in range(n_touched):
        d = touched[i]
        s = np.float32(acc[d])
        acc[d] = 0.0
        seen[d] = False
        if filled < size:
            j = filled  # sift up
            filled += 1
            while j > 0:
                parent = (j - 1) // 2
                if _worse(s, id_rank[d], heap_score[parent], id_rank[heap_doc[parent]]):
                    heap_doc[j], heap_score[j] = heap_doc[parent], heap_score[parent]
                    j = parent
                else:
                    break
            heap_doc[j], heap_score[j] = d, s
        elif size > 0 and _worse(heap_score[0], id_rank[heap_doc[0]], s, id_rank[d]):
            j = 0  # replace the root, sift down
            while True:
                child = 2 * j + 1
                if child >= size:
                    break
                right = child + 1
                if right < size and _worse(
                    heap_score[right], id_rank[heap_doc[right]], heap_score[child], id_rank[heap_doc[child]]
                ):
                    child = right
                if _worse(heap_score[child], id_rank[heap_doc[child]], s, id_rank[d]):
                    heap_doc[j], heap_score[j] = heap_doc[child], heap_score[child]
                    j = child
                else:
                    break
            heap_doc[j], heap_score[j] = d, s
    return heap_doc, heap_score


@njit(nogil=True, cache=True)
def term_bounds(docs, tf, indptr, cache, norms):
    """Per term, the largest ``tf * c / (1 + tf * c)`` over its postings: its score bound per unit weight.

    A term's BM25 score is ``w * tf * c / (1 + tf * c)``, so ``w`` times this bounds every
    posting's score; :func:`pruned_top_k` skips work the bounds prove useless.
    """
    n_terms = indptr.shape[0] - 1
    out = np.zeros(n_terms)
    for t in range(n_terms):
        best = 0.0
        for p in range(indptr[t], indptr[t + 1]):
            x = np.float64(tf[p]) * np.float64(cache[norms[docs[p]]])
            best = max(best, x / (1.0 + x))
        out[t] = best
    return out


@njit(nogil=True, cache=True)
def unit_scores(docs, tf, indptr, idf, cache, norms):
    """Every posting's score at boost 1 (``w = idf``), so a query term of count 1 only adds it up."""
    out = np.empty(docs.shape[0], dtype=np.float32)
    one = np.float32(1)
    for t in range(indptr.shape[0] - 1):
        w = idf[t]
        for p in range(indptr[t], indptr[t + 1]):
            out[p] = w - w / (one + np.float32(tf[p]) * cache[norms[docs[p]]])
    return out


_SAFETY = 1e-5  # relative margin between a bound and the threshold: far above float32 rounding (6e-8)
BLOCK = 32768  # documents per block: a block's double accumulators (256 KB) stay in the L2 cache


@njit(nogil=True, cache=True)
def _push(heap_doc, heap_score, filled, d, s, id_rank):
    """Offer document ``d`` with score ``s`` to a min-heap of the best (score desc, id asc) so far."""
    size = heap_doc.shape[0]
    if filled < size:
        j = filled
        while j > 0:
            parent = (j - 1) // 2
            ps = heap_score[parent]
            if s < ps or (s == ps and id_rank[d] > id_rank[heap_doc[parent]]):
                heap_doc[j], heap_score[j] = heap_doc[parent], ps
                j = parent
            else:
                break
        heap_doc[j], heap_score[j] = d, s
        return filled + 1
    root = heap_score[0]
    if s < root or (s == root and id_rank[d] > id_rank[heap_doc[0]]):
        return filled
    j = 0
    while True:
        child = 2 * j + 1
        if child >= size:
            break
        right = child + 1
        if right < size:
            cs, rs = heap_score[child], heap_score[right]
            if rs < cs or (rs == cs and id_rank[heap_doc[right]] > id_rank[heap_doc[child]]):
                child = right
        cs = heap_score[child]
        if cs < s or (cs == s and id_rank[heap_doc[child]] > id_rank[d]):
            heap_doc[j], heap_score[j] = heap_doc[child], cs
            j = child
        else:
            break
    heap_doc[j], heap_score[j] = d, s
    return filled


@njit(nogil=True, cache=True, inline="always")
def _score(p, d, w, plain, unit, tf, cache, norms):
    one = np.float32(1)
    return unit[p] if plain else w - w / (one + np.float32(tf[p]) * cache[norms[d]])


@njit(nogil=True, cache=True)
def flat_top_k(k, docs, tf, unit, indptr, rows, weights, is_unit, bounds, cache, norms, acc, touched, id_rank):
    """The exact top ``k`` (unordered) of a flat disjunction of terms: a block of documents at a time, MaxScore.

    ``rows`` come sorted by bound (``weights * bounds``), largest first; a term whose weight is
    its idf (``is_unit``) adds the precomputed ``unit`` scores, any other computes its own.
    Within a block every term's postings add into block-local double accumulators (``acc``,
    ``touched``: one block long) that stay in cache, where one array over the collection would
    miss it on every posting. A dense block is added without branches and then scanned; a
    sparse one keeps a list of the documents it touched. Once the heap's k-th score exceeds what
    the lowest-bound terms could add up to, those terms can no longer bring a document in: they
    only add to documents the others touched (MaxScore's non-essential terms).
    """
    n_terms, n_docs = rows.shape[0], norms.shape[0]
    cursor = np.empty(n_terms, dtype=np.int64)
    stop = np.empty(n_terms, dtype=np.int64)
    block_end = np.empty(n_terms, dtype=np.int64)
    suffix = np.zeros(n_terms + 1)  # sum of the bounds of terms t.. (the ones after t included)
    for t in range(n_terms - 1, -1, -1):
        cursor[t], stop[t] = indptr[rows[t]], indptr[rows[t] + 1]
        suffix[t] = suffix[t + 1] + weights[t] * bounds[t]
    size = min(k, n_docs)
    heap_doc = np.empty(size, dtype=np.int32)
    heap_score = np.empty(size, dtype=np.float32)
    filled, essential = 0, n_terms
    for start in range(0, n_docs, BLOCK):
        end = min(start + BLOCK, n_docs)
        in_block = 0
        for t in range(n_terms):
            block_end[t] = cursor[t] + np.searchsorted(docs[cursor[t] : stop[t]], end)
            if t < essential:
                in_block += block_end[t] - cursor[t]
        if in_block == 0:
            for t in range(n_terms):
                cursor[t] = block_end[t]
            continue
        dense = in_block >= BLOCK // 4
        n_touched = 0
        for t in range(n_terms):
            w, plain = weights[t], is_unit[t]
            if t < essential and dense:
                for p in range(cursor[t], block_end[t]):
                    d = docs[p]
                    acc[d - start] += _score(p, d, w, plain, unit, tf, cache, norms)
            elif t < essential:
                for p in range(cursor[t], block_end[t]):
                    d = docs[p]
                    local = d - start
                    if acc[local] == 0.0:  # scores are > 0: zero means untouched in this block
                        touched[n_touched] = local
                        n_touched += 1
                    acc[local] += _score(p, d, w, plain, unit, tf, cache, norms)
            else:
                for p in range(cursor[t], block_end[t]):
                    d = docs[p]
                    if acc[d - start] != 0.0:
                        acc[d - start] += _score(p, d, w, plain, unit, tf, cache, norms)
            cursor[t] = block_end[t]
        if dense:
            for local in range(end - start):
                if acc[local] != 0.0:
                    touched[n_touched] = local
                    n_touched += 1
        for i in range(n_touched):
            local = touched[i]
            score = np.float32(acc[local])
            acc[local] = 0.0
            if filled < size or score >= heap_score[0]:
                filled = _push(heap_doc, heap_score, filled, start + local, score, id_rank)
        if filled == size and size > 0:
            threshold = heap_score[0] * (1 - _SAFETY)
            while essential > 0 and suffix[essential - 1] * (1 + _SAFETY) < threshold:
                essential -= 1
    return heap_doc[:filled], heap_score[:filled]
