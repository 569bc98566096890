"""Constrained beam search: the decoder may only spell identifiers that exist.

At each step the scorer's logits are masked to the tokens the trie allows after each beam's
prefix and renormalised over them (log-softmax on the allowed set), so a beam's score is the
log-probability of its id under the constrained distribution. A beam that takes EOS is a
finished id; the search stops when the beam is empty or no live beam can still beat the k-th
finished one (scores only fall as ids grow). Every result is a document of the trie: an
unknown id cannot come out. If fewer than k ids finish, the documents below the deepest,
best-scored prefixes the search reached fill the list (with scores below every finished id).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from rankbench.retrievers.trie import Trie

# prefixes (each a list of token ids, BOS excluded) -> logits, one row per prefix over the whole vocabulary
Scorer = Callable[[list[list[int]]], np.ndarray]


def _log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max()
    return shifted - np.log(np.exp(shifted).sum())


def beam_search(scorer: Scorer, trie: Trie, beam_size: int, k: int) -> list[tuple[int, float]]:
    """The top ``k`` documents as (document index, score), best first; len = min(k, documents)."""
    if beam_size < 1 or k < 1:
        raise ValueError(f"beam_size and k must be >= 1, got {beam_size} and {k}")
    beams: list[tuple[tuple[int, ...], float]] = [((), 0.0)]
    finished: list[tuple[int, float]] = []
    reached: list[tuple[int, float, tuple[int, ...]]] = []  # (depth, score, prefix) of every beam held
    while beams:
        logits = np.asarray(scorer([list(p) for p, _ in beams]), dtype=np.float64)
        candidates = []
        for (prefix, score), row in zip(beams, logits, strict=True):
            allowed = trie.allowed(prefix)
            for token, lp in zip(allowed, _log_softmax(row[allowed]), strict=True):
                candidates.append((score + float(lp), (*prefix, token)))
        candidates.sort(key=lambda c: -c[0])
        beams = []
        for score, seq in candidates[:beam_size]:
            if seq[-1] == trie.eos:
                finished.append((trie.document(seq), score))  # type: ignore[arg-type]
            else:
                beams.append((seq, score))
                reached.append((len(seq), score, seq))
        finished.sort(key=lambda f: -f[1])
        if len(finished) >= k and (not beams or beams[0][1] <= finished[k - 1][1]):
            break
    return _fill(finished[:k], reached, trie, k)


def _fill(
    top: list[tuple[int, float]], reached: Sequence[tuple[int, float, tuple[int, ...]]], trie: Trie, k: int
) -> list[tuple[int, float]]:
    """Complete ``top`` to k documents with those sharing the deepest, best prefixes reached, then any."""
    seen = {doc for doc, _ in top}
    floor = top[-1][1] if top else 0.0
    prefixes = [p for _, _, p in sorted(reached, key=lambda r: (-r[0], -r[1]))] + [()]
    out = list(top)
    for prefix in prefixes:
        for doc in trie.node(prefix).docs:  # type: ignore[union-attr]
            if len(out) >= k:
                return out
            if doc not in seen:
                seen.add(doc)
                out.append((doc, floor - len(out) - 1 + len(top)))
    return out
