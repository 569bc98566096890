"""Dense retrieval with the real all-MiniLM-L6-v2 on a tiny corpus: ranking, caching, resume, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rankbench.harness.datasets import BeirCorpus
from rankbench.harness.errors import ConfigError
from rankbench.harness.models import ModelUnavailable, NotAnEncoder, encoder_spec, resolve_model
from rankbench.harness.readers import BeirSource
from rankbench.harness.types import Query
from rankbench.retrievers.dense import Dense
from rankbench.retrievers.encoder import TorchEncoder
from tests.conftest import TINY_DOCS, write_beir

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


class CountingEncoder:
    """A real TorchEncoder that counts the texts it encodes and can fail after ``fail_after`` calls."""

    def __init__(self, inner: TorchEncoder, fail_after: int | None = None, dim: int | None = None):
        self.inner, self.spec, self.identity = inner, inner.spec, inner.identity
        self.dim = dim or inner.dim
        self.texts: list[str] = []
        self.fail_after = fail_after

    def encode(self, texts: list[str], batch_size: int, desc: str = "") -> np.ndarray:
        if self.fail_after is not None and len(self.texts) >= self.fail_after:
            raise KeyboardInterrupt("interrupted mid-corpus")
        self.texts += texts
        return self.inner.encode(texts, batch_size, desc)[:, : self.dim]


@pytest.fixture(scope="module")
def minilm() -> TorchEncoder:
    return TorchEncoder(encoder_spec(MINILM), dtype="float32")


class CountedDense(Dense):
    def __init__(self, encoder: CountingEncoder, **kwargs):
        super().__init__(model=MINILM, **kwargs)
        self.counting = encoder

    def make_encoder(self, cache_dir: Path) -> CountingEncoder:
        return self.counting


@pytest.fixture
def corpus(tmp_path: Path) -> BeirCorpus:
    docs = [*TINY_DOCS, {"_id": "empty", "title": "", "text": ""}]
    return BeirCorpus(BeirSource(write_beir(tmp_path / "tiny", docs=docs)))


def test_ranks_and_keeps_empty_documents(corpus, tmp_path: Path, minilm):
    dense = CountedDense(CountingEncoder(minilm), hits=10, shard_size=2)
    dense.index(corpus, tmp_path)
    assert dense.embeddings.docids == ["d1", "d2", "d3", "q2", "empty"]  # the empty doc keeps its id and row
    assert "" in dense.counting.texts
    run = dense.retrieve([Query("a", "how big do goldfish get"), Query("b", "  "), Query("c", "sleeping cats")])
    assert run["a"][0][0] == "d1" and run["c"][0][0] == "d3"
    assert run["b"] == []  # an empty query retrieves nothing
    assert len(run["a"]) == 5


def test_second_index_does_no_encoding(corpus, tmp_path: Path, minilm):
    CountedDense(CountingEncoder(minilm)).index(corpus, tmp_path)
    again = CountedDense(CountingEncoder(minilm))
    again.index(corpus, tmp_path)
    assert again.counting.texts == []
    assert isinstance(again.embeddings.vectors, np.memmap) and again.embeddings.vectors.dtype == np.float16


def test_index_that_would_not_fit_is_refused_after_the_embeddings_are_cached(corpus, tmp_path: Path, minilm):
    with pytest.raises(ConfigError, match=r"retriever\.memory_limit=1MB\. Use a smaller retriever\.index"):
        CountedDense(CountingEncoder(minilm), memory_limit="1MB").index(corpus, tmp_path)
    again = CountedDense(CountingEncoder(minilm))
    again.index(corpus, tmp_path)
    assert again.counting.texts == []  # the refused run's embeddings were kept


def test_interrupted_encoding_resumes_from_last_shard(corpus, tmp_path: Path, minilm):
    with pytest.raises(KeyboardInterrupt):
        CountedDense(CountingEncoder(minilm, fail_after=4), shard_size=2).index(corpus, tmp_path)
    resumed = CountedDense(CountingEncoder(minilm), shard_size=2)
    resumed.index(corpus, tmp_path)
    assert len(resumed.counting.texts) == 1  # shards 1-2 (4 docs) survived; only the 5th doc is encoded
    assert resumed.embeddings.docids[-1] == "empty"
    assert not list((tmp_path / "embeddings").glob("*.partial"))


def test_dimension_mismatch_is_detected_and_recomputed(corpus, tmp_path: Path, minilm, caplog):
    CountedDense(CountingEncoder(minilm)).index(corpus, tmp_path)
    narrower = CountedDense(CountingEncoder(minilm, dim=128))  # same cache key, other output size
    narrower.index(corpus, tmp_path)
    assert "dimension 384" in caplog.text and "model gives 128" in caplog.text
    assert narrower.embeddings.vectors.shape == (5, 128) and len(narrower.counting.texts) == 5


def test_hnsw_agrees_with_exact_search_on_top_hit(corpus, tmp_path: Path, minilm):
    exact = CountedDense(CountingEncoder(minilm))
    exact.index(corpus, tmp_path)
    approx = CountedDense(CountingEncoder(minilm), index="hnsw")
    approx.index(corpus, tmp_path)
    query = [Query("a", "wireless headphones")]
    assert approx.retrieve(query)["a"][0][0] == exact.retrieve(query)["a"][0][0]
    assert list((tmp_path / "faiss").iterdir())  # the HNSW graph is cached


def test_remove_query_drops_self_hit(corpus, tmp_path: Path, minilm):
    dense = CountedDense(CountingEncoder(minilm), remove_query=True)
    dense.index(corpus, tmp_path)
    assert "q2" not in [d for d, _ in dense.retrieve([Query("q2", "bluetooth")])["q2"]]


def test_model_spec_reads_the_model_and_known_families(tmp_path: Path):
    spec = encoder_spec(MINILM)
    assert (spec.pooling, spec.normalize, spec.max_length, spec.query_prefix) == ("mean", True, 256, "")
    e5 = tmp_path / "intfloat" / "e5-small-copy"
    shutil.copytree(resolve_model(MINILM), e5)
    spec = encoder_spec(str(e5))
    assert (spec.query_prefix, spec.doc_prefix) == ("query: ", "passage: ")
    assert encoder_spec(str(e5), query_prefix="q> ", max_length=64).query_prefix == "q> "


def test_folder_that_is_not_an_encoder(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotAnEncoder, match=r"no config\.json with a model_type"):
        encoder_spec(str(tmp_path / "empty"))
    gpt = tmp_path / "gpt"
    gpt.mkdir()
    (gpt / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(NotAnEncoder, match="generative model, not an encoder"):
        encoder_spec(str(gpt))


def test_unreachable_model_names_the_ways_to_provide_it(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelUnavailable, match=r"'BAAI/bge-small-en-v1\.5' is not a local folder") as info:
        resolve_model("BAAI/bge-small-en-v1.5")
    assert "retriever.model, reranker.model, llm.model" in str(info.value)
    with pytest.raises(ModelUnavailable, match="does not exist"):
        resolve_model(str(tmp_path / "no-such-model"))


def test_bad_settings_name_the_key():
    with pytest.raises(ConfigError, match=r"retriever\.index must be one of flat, flat_fp16, hnsw, ivf, ivfpq"):
        Dense(index="ivf_pq")
