"""The synthetic corpora of the scaling benchmark: the same bytes for a seed, SciFact's words and lengths
(or MS MARCO's mean length), and a half-written corpus regenerated rather than trusted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks import synthetic
from rankbench.harness.readers import BeirSource, iter_beir_docs
from tests.conftest import SHARED_DATA

SCIFACT_ZIP = SHARED_DATA / "beir" / "scifact.zip"


@pytest.fixture(scope="module")
def source() -> synthetic.Source:
    return synthetic.Source(SCIFACT_ZIP)


def distractors(folder: Path) -> list[str]:
    return [d.text for d in iter_beir_docs(BeirSource(folder)) if d.docid.startswith(synthetic.DISTRACTOR_PREFIX)]


def test_generator_is_deterministic_per_seed(source: synthetic.Source, tmp_path: Path):
    spec = synthetic.msmarco_spec(seed=7, scifact_docs=source.docs, passages=source.docs + 3000)
    first = synthetic.ensure_corpus(spec, source, tmp_path / "a")
    second = synthetic.ensure_corpus(spec, source, tmp_path / "b")
    other = synthetic.ensure_corpus(synthetic.Spec(spec.name, spec.distractors, "msmarco", 8), source, tmp_path / "c")
    corpus = (first / "corpus.jsonl").read_bytes()
    assert corpus == (second / "corpus.jsonl").read_bytes()
    assert corpus != (other / "corpus.jsonl").read_bytes()
    assert (first / "qrels" / "test.tsv").read_bytes() == source.files["qrels/test.tsv"]
    assert len(distractors(first)) == 3000
    assert synthetic.read_manifest(first)["docs"] == source.docs + 3000


def test_msmarco_lengths_have_the_target_mean(source: synthetic.Source):
    spec = synthetic.msmarco_spec(seed=3, scifact_docs=source.docs, passages=source.docs + 20_000)
    lengths = synthetic.sample_lengths(spec, source, np.random.default_rng(spec.seed), spec.distractors)
    assert abs(lengths.mean() - synthetic.MSMARCO_MEAN_WORDS) < 1.0
    assert lengths.min() >= 1


def test_distractor_words_and_lengths_follow_scifact(source: synthetic.Source, tmp_path: Path):
    folder = synthetic.ensure_corpus(synthetic.scifact_spec(2000, seed=1), source, tmp_path)
    texts = distractors(folder)
    lengths = np.array([len(t.split()) for t in texts])
    assert abs(lengths.mean() - source.lengths.mean()) < 0.05 * source.lengths.mean()
    the = sum(t.split().count("the") for t in texts) / lengths.sum()  # SciFact's most common word
    assert the == pytest.approx(np.mean(source.stream == source.stream[np.argmax(np.bincount(source.stream))]), 0.1)


def test_half_written_corpus_is_regenerated(source: synthetic.Source, tmp_path: Path):
    spec = synthetic.scifact_spec(50, seed=1)
    folder = synthetic.ensure_corpus(spec, source, tmp_path)
    whole = (folder / "corpus.jsonl").read_bytes()
    with open(folder / "corpus.jsonl", "r+b") as f:  # as if the writer died part way
        f.truncate(len(whole) // 2)
    assert synthetic.read_manifest(folder) is None
    assert (synthetic.ensure_corpus(spec, source, tmp_path) / "corpus.jsonl").read_bytes() == whole
