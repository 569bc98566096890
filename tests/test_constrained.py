"""Trie and constrained beam search: pure logic, scored by scripted fakes (random or fixed logits), no model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rankbench.retrievers.constrained import beam_search
from rankbench.retrievers.trie import Trie

ALPHABET = 5  # tokens 0..4; EOS = 5


def scripted_random_scorer(seed: int, vocab: int = ALPHABET + 1):
    """A scripted fake decoder: random logits over the whole vocabulary, disallowed tokens included."""
    rng = np.random.default_rng(seed)

    def score(prefixes: list[list[int]]) -> np.ndarray:
        return rng.normal(scale=5.0, size=(len(prefixes), vocab))

    return score


def scripted_fixed_scorer(preferred: int, vocab: int = ALPHABET + 1):
    """A scripted fake decoder that always puts all its mass on ``preferred`` (valid or not)."""

    def score(prefixes: list[list[int]]) -> np.ndarray:
        logits = np.full((len(prefixes), vocab), -10.0)
        logits[:, preferred] = 10.0
        return logits

    return score


id_sets = st.lists(st.lists(st.integers(0, ALPHABET - 1), min_size=1, max_size=4), min_size=1, max_size=30).map(
    lambda seqs: [list(s) for s in dict.fromkeys(tuple(s) for s in seqs)]
)


@settings(max_examples=150, deadline=None)
@given(ids=id_sets, k=st.integers(1, 12), beam=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_only_valid_ids_come_out(ids, k, beam, seed):
    trie = Trie(ids, eos=ALPHABET)
    results = beam_search(scripted_random_scorer(seed), trie, beam, k)
    docs = [doc for doc, _ in results]
    assert len(docs) == min(k, len(ids))  # short beams are filled up to k
    assert len(set(docs)) == len(docs)
    assert all(0 <= d < len(ids) for d in docs)
    scores = [s for _, s in results]
    assert scores == sorted(scores, reverse=True)


@settings(max_examples=100, deadline=None)
@given(ids=id_sets, seed=st.integers(0, 2**16))
def test_every_beam_prefix_is_a_valid_prefix(ids, seed):
    """The scorer is only ever asked about prefixes of real ids."""
    trie = Trie(ids, eos=ALPHABET)
    asked: list[list[int]] = []
    inner = scripted_random_scorer(seed)

    def recording(prefixes):
        asked.extend(prefixes)
        return inner(prefixes)

    beam_search(recording, trie, beam_size=4, k=4)
    assert all(any(seq[: len(p)] == p for seq in ids) for p in asked)


def test_a_scorer_that_wants_an_invalid_token_still_gets_a_valid_id():
    trie = Trie([[0, 1], [0, 2], [3]], eos=ALPHABET)
    results = beam_search(scripted_fixed_scorer(preferred=4), trie, beam_size=1, k=1)  # token 4 starts no id
    assert len(results) == 1 and results[0][0] in (0, 1, 2)


def test_beam_follows_the_scorer_when_it_is_valid():
    trie = Trie([[0, 1], [0, 2], [3]], eos=ALPHABET)
    assert beam_search(scripted_fixed_scorer(preferred=3), trie, beam_size=2, k=1)[0][0] == 2


def test_fill_takes_documents_under_the_best_prefix_first():
    """Beam 1 finishes a single id; the rest of k comes from its siblings before any other branch."""
    ids = [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1]]
    trie = Trie(ids, eos=ALPHABET)
    results = beam_search(scripted_fixed_scorer(preferred=0), trie, beam_size=1, k=4)
    assert [d for d, _ in results[:3]] == [0, 1, 2]  # [0, 0] then its siblings under prefix [0]
    assert results[3][0] in (3, 4)


def test_duplicate_ids_are_refused():
    with pytest.raises(ValueError, match="same id"):
        Trie([[1, 2], [1, 2]], eos=ALPHABET)
