"""Document identifiers: semantic (real MiniLM embeddings, hierarchical k-means), atomic, title; cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rankbench.harness.datasets import BeirCorpus
from rankbench.harness.errors import ConfigError
from rankbench.harness.readers import BeirSource
from rankbench.retrievers.docids import build_docids, scheme_settings, semantic_ids, token_sequences
from tests.conftest import write_beir
from tests.generative_corpus import DOCS


def corpus_of(folder: Path, docs=DOCS) -> BeirCorpus:
    return BeirCorpus(BeirSource(write_beir(folder, docs=docs)))


def test_semantic_ids_are_unique_stable_and_cached(tmp_path: Path):
    corpus = corpus_of(tmp_path / "beir")
    settings = scheme_settings("semantic", k=3, max_leaf=3, max_depth=6)
    first = build_docids(corpus, "semantic", settings, seed=7, cache_dir=tmp_path / "cache")
    assert first.docids == [d["_id"] for d in DOCS]
    assert len(set(first.ids)) == len(DOCS)
    assert max(map(len, first.ids)) >= 3  # 24 documents, leaves of <= 3: several levels
    assert all(v < 3 for seq in first.ids for v in seq)
    # a fresh computation (other cache, same embeddings model and seed) gives the same ids
    again = build_docids(corpus, "semantic", settings, seed=7, cache_dir=tmp_path / "cache2")
    assert again.ids == first.ids and again.digest == first.digest
    cached = list((tmp_path / "cache" / "docids").glob("[0-9a-f]*"))
    assert len(cached) == 1 and (cached[0] / "manifest.json").is_file()
    assert build_docids(corpus, "semantic", settings, seed=7, cache_dir=tmp_path / "cache") == first


def test_semantic_ids_group_similar_documents():
    """Two tight groups of vectors get different first tokens: ids follow the embedding space."""
    rng = np.random.default_rng(0)
    vectors = np.concatenate([rng.normal(0, 0.01, (6, 8)) + 5, rng.normal(0, 0.01, (6, 8)) - 5]).astype(np.float32)
    ids = semantic_ids(vectors, k=2, max_leaf=6, max_depth=4, seed=1)
    assert len({i[0] for i in ids[:6]}) == 1 and len({i[0] for i in ids[6:]}) == 1 and ids[0][0] != ids[6][0]
    assert ids == semantic_ids(vectors, k=2, max_leaf=6, max_depth=4, seed=1)


def test_identical_vectors_and_depth_limit_still_give_unique_ids():
    ids = semantic_ids(np.ones((50, 4), dtype=np.float32), k=3, max_leaf=2, max_depth=3, seed=0)
    assert len(set(ids)) == 50 and max(map(len, ids)) <= 3


def test_position_aware_tokens_tell_levels_apart():
    ids = [(0, 1), (1, 0)]
    aware, keys = token_sequences(ids, position_aware=True)
    plain, plain_keys = token_sequences(ids, position_aware=False)
    assert len(keys) == 4 and aware[0][0] != aware[1][1]
    assert len(plain_keys) == 2 and plain[0][0] == plain[1][1]


def test_atomic_ids(tmp_path: Path):
    ids = build_docids(corpus_of(tmp_path / "beir"), "atomic", {}, seed=0, cache_dir=tmp_path / "cache")
    assert ids.ids == [(i,) for i in range(len(DOCS))]


def test_title_ids_and_duplicate_titles_refused(tmp_path: Path):
    ids = build_docids(corpus_of(tmp_path / "beir"), "title", scheme_settings("title", 0, None, 1), 0, tmp_path / "c")
    assert len(set(ids.ids)) == len(DOCS)
    docs = [*DOCS, {"_id": "again", "title": "Goldfish", "text": "Another goldfish page."}]
    with pytest.raises(ConfigError, match=r"'Goldfish' \(doc00, again\).*docids=semantic or docids=atomic"):
        build_docids(corpus_of(tmp_path / "dup", docs), "title", {}, seed=0, cache_dir=tmp_path / "c")


def test_bad_scheme_settings_name_the_key():
    with pytest.raises(ConfigError, match="docids must be one of"):
        scheme_settings("random", 10, None, 4)
    with pytest.raises(ConfigError, match="k >= 2"):
        scheme_settings("semantic", 1, None, 4)
