"""Generative retrieval with the real all-MiniLM-L6-v2 encoder, trained here on a 24-document corpus (CPU, 1 thread)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch

from rankbench.harness.datasets import BeirCorpus
from rankbench.harness.errors import ConfigError, DataError
from rankbench.harness.experiment import run_experiment
from rankbench.harness.models import resolve_model
from rankbench.harness.readers import BeirSource
from rankbench.harness.runfile import read_trec_run
from rankbench.harness.types import Doc, Query
from rankbench.retrievers.docids import build_docids
from rankbench.retrievers.generative import Generative
from rankbench.retrievers.generative_model import GenerativeRetriever
from rankbench.retrievers.train_generative import Example, TrainConfig, doc_text, hits, load_data, split_examples, train
from tests.conftest import run_python, write_beir
from tests.generative_corpus import DOCS, QRELS, QUERIES

DOCIDS = [d["_id"] for d in DOCS]
# Small and fast: short inputs, one batch covers all 24 documents, no warm-up; 30 steps reach Hits@1 = 1.0.
FAST = {"max_length": 24, "batch_size": 24, "spans": 0, "warmup": 0.0, "lr": 3e-4, "decoder_lr": 3e-3}
FAST |= {"threads": 1, "dtype": "float32", "eval_size": 4, "epochs": 100.0}


def config(beir: Path, out: Path, cache: Path, **changes) -> TrainConfig:
    where = {"dataset": "scifact", "overrides": [f"dataset.path={beir}"], "cache_dir": str(cache)}
    return TrainConfig(out=str(out), **(where | FAST | changes))


@pytest.fixture(scope="module")
def beir(tmp_path_factory) -> Path:
    return write_beir(tmp_path_factory.mktemp("data") / "gen", docs=DOCS, queries=QUERIES, qrels=QRELS)


@pytest.fixture(scope="module")
def trained(beir: Path, tmp_path_factory) -> Path:
    """Semantic ids (k=4: three levels), 30 steps on the documents' own texts, titles and first sentences."""
    root = tmp_path_factory.mktemp("model")
    train(config(beir, root / "gen", root / "cache", docids="semantic", k=4, max_steps=30, checkpoint_every=30))
    return root / "gen"


def test_training_memorises_every_document(trained: Path):
    model = GenerativeRetriever.load(trained)
    indexing = [Example(doc_text(Doc(d["_id"], d["title"], d["text"])), i, "indexing") for i, d in enumerate(DOCS)]
    assert model.docids.docids == DOCIDS
    assert hits(model, indexing)["hits@1"] == 1.0
    record = json.loads((trained / "training.json").read_text())
    assert record["steps"] == 30 and len(record["losses"]) == 30
    assert record["losses"][-1] < record["losses"][0] / 4
    assert record["corpus_fingerprint"] == model.docids.corpus_fingerprint
    assert record["docids"]["scheme"] == "semantic" and record["id_length_max"] >= 3
    assert "query" not in record["train_examples"]  # a test split's judged queries are never trained on
    assert record["evals"][-1]["step"] == 30 and "hits@10" in record["evals"][-1]


def test_end_to_end_run_has_only_corpus_docids(trained: Path, beir: Path, make_cfg, caplog):
    """The fixture stops at --max-steps 30 of its 100 epochs: an incomplete model, warned about and flagged."""
    cfg = make_cfg(f"dataset.path={beir}", "retriever=generative", f"retriever.model={trained}", "retriever.threads=1")
    with caplog.at_level(logging.WARNING):
        outcome = run_experiment(cfg)
    total = json.loads((trained / "training.json").read_text())["total_steps"]
    assert f"model {trained} is incomplete: its training stopped at step 30 of {total}" in caplog.text
    assert outcome.row["retriever_model_complete"] == "false"
    run = read_trec_run(outcome.run_dir / "run.trec")
    assert set(run) == {q["_id"] for q in QUERIES}
    for ranked in run.values():
        docids = [d for d, _ in ranked]
        assert len(docids) == len(DOCS) and set(docids) == set(DOCIDS)  # hits=100 clipped to the corpus
    assert run["t1"][0][0] == "doc00"  # "how big do goldfish get": the Goldfish document
    assert outcome.metrics["R@100"] == 1.0


def test_a_model_retrained_in_place_is_run_again(trained: Path, beir: Path, make_cfg, tmp_path: Path):
    """Same folder name, new weights: the kept run and the cached first stage of the old model are not reused."""
    folder = shutil.copytree(trained, tmp_path / "gen", ignore=shutil.ignore_patterns("checkpoint"))
    cfg = make_cfg(f"dataset.path={beir}", "retriever=generative", f"retriever.model={folder}", "retriever.threads=1")
    cfg.cache_dir = str(tmp_path / "cache")
    before = run_experiment(cfg)
    assert before.row is not None and run_experiment(cfg).row is None  # unchanged: the complete run is kept
    model = GenerativeRetriever.load(folder)
    with torch.no_grad():
        model.embed.weight.neg_()  # a different model under the same name
    model.save(folder)
    after = run_experiment(cfg)
    assert after.row is not None and after.run_dir != before.run_dir
    assert read_trec_run(after.run_dir / "run.trec") != read_trec_run(before.run_dir / "run.trec")


def test_first_stage_benchmark_smoke(trained: Path, beir: Path, tmp_path: Path):
    """BM25, dense and this model through benchmarks/first_stage.py on the tiny corpus (speed is not asserted)."""
    out = tmp_path / "results"
    args = ["--generative", str(trained), "--latency-queries", "2", "--out", str(out), "--cache-dir", str(tmp_path)]
    run_python("benchmarks/first_stage.py", *args, "--override", f"dataset.path={beir}", "retriever.threads=1")
    report = json.loads((out / "first_stage.json").read_text())
    by_system = {r["system"]: r for r in report["results"]}
    assert set(by_system) == {"bm25", "dense", "generative"}
    model_bytes = (trained / "weights.safetensors").stat().st_size + (trained / "docids.json").stat().st_size
    assert by_system["generative"]["index_bytes"] == model_bytes
    assert by_system["dense"]["index_bytes"] == len(DOCS) * 384 * 2 + 128  # float16 vectors + the .npy header
    assert all(r["latency_queries"] == 2 and r["queries"] == len(QUERIES) for r in by_system.values())
    assert by_system["generative"]["R@100"] == 1.0  # every document comes back: hits clipped to the corpus
    assert by_system["bm25"]["latency_vs_bm25"] == 1.0 and "| generative |" in (out / "first_stage.md").read_text()


def test_hits_beyond_the_corpus_are_clipped_and_beam_checked(trained: Path, beir: Path, caplog):
    corpus = BeirCorpus(BeirSource(beir))
    retriever = Generative(model=str(trained), hits=1000, threads=1)
    with caplog.at_level(logging.WARNING):
        retriever.index(corpus, beir)
    assert "retriever.hits=1000 exceeds the corpus' 24 documents" in caplog.text
    run = retriever.retrieve([Query("x", "volcano lava"), Query("empty", " ")])
    assert len(run["x"]) == 24 and len({d for d, _ in run["x"]}) == 24 and run["empty"] == []
    with pytest.raises(ConfigError, match=r"retriever.beam_size=2 must be >= retriever.hits=5"):
        Generative(model=str(trained), hits=5, beam_size=2).index(corpus, beir)


def test_a_model_of_another_corpus_is_refused(trained: Path, tmp_path: Path):
    docs = [*DOCS[:-1], {**DOCS[-1], "text": "Telescopes changed."}]
    other = BeirCorpus(BeirSource(write_beir(tmp_path / "other", docs=docs)))
    with pytest.raises(ConfigError, match=rf"retriever.model={trained} was trained on corpus sha256:"):
        Generative(model=str(trained), threads=1).index(other, tmp_path)


def test_an_edited_id_map_is_refused(trained: Path, tmp_path: Path):
    copy = shutil.copytree(trained, tmp_path / "copy", ignore=shutil.ignore_patterns("checkpoint"))
    stored = json.loads((copy / "docids.json").read_text())
    stored["ids"][0], stored["ids"][1] = stored["ids"][1], stored["ids"][0]  # two documents swap ids
    (copy / "docids.json").write_text(json.dumps(stored))
    with pytest.raises(DataError, match=r"docids\.json: id map content does not match its digest"):
        GenerativeRetriever.load(copy)


def test_a_folder_that_is_not_a_generative_model_is_refused(tmp_path: Path, make_cfg, beir: Path):
    with pytest.raises(ConfigError, match=r"retriever\.model=.*has no generative\.json"):
        run_experiment(make_cfg(f"dataset.path={beir}", "retriever=generative", f"retriever.model={tmp_path}"))
    with pytest.raises(ConfigError, match=r"retriever\.model is required"):
        Generative(model=None)


@pytest.mark.slow
def test_resume_equals_an_uninterrupted_run_and_other_settings_are_refused(beir: Path, tmp_path: Path):
    """3 steps by the CLI, then 3 more in a new session, against 6 in one go (atomic ids, 16 tokens)."""
    small = {"docids": "atomic", "max_length": 16, "checkpoint_every": 3, "eval_size": 2}
    whole = train(config(beir, tmp_path / "whole", tmp_path / "cache", max_steps=6, **small))
    cli = ["--out", str(tmp_path / "split"), "--dataset", "scifact", "--overrides", f"dataset.path={beir}"]
    cli += ["--cache-dir", str(tmp_path / "cache"), "--max-steps", "3", "--max-length", "16", "--docids", "atomic"]
    flags = {k: v for k, v in FAST.items() if k != "max_length"} | {"checkpoint_every": 3, "eval_size": 2}
    cli += [arg for k, v in flags.items() for arg in (f"--{k.replace('_', '-')}", str(v))]
    run_python("-m", "rankbench.retrievers.train_generative", *cli, timeout=300)
    first = json.loads((tmp_path / "split" / "training.json").read_text())
    assert first["steps"] == 3 and "rankbench.retrievers.train_generative --out" in first["command"]
    resumed = train(config(beir, tmp_path / "split", tmp_path / "cache", max_steps=6, **small))
    assert resumed["losses"] == pytest.approx(whole["losses"], abs=1e-4)
    a, b = (GenerativeRetriever.load(tmp_path / name).state_dict() for name in ("whole", "split"))
    assert all(torch.allclose(a[key], b[key], atol=1e-4) for key in a)
    with pytest.raises(ConfigError, match=r"other settings \(--lr: 0\.0003 in the checkpoint, 1e-05 now\)"):
        train(config(beir, tmp_path / "split", tmp_path / "cache", max_steps=6, **small, lr=1e-5))


def test_a_scratch_encoder_has_the_base_shape_but_not_its_weights(beir: Path, tmp_path: Path):
    corpus = BeirCorpus(BeirSource(beir))
    docids = build_docids(corpus, "atomic", {}, 13, tmp_path)
    base = resolve_model("sentence-transformers/all-MiniLM-L6-v2")
    models = {init: GenerativeRetriever.fresh(base, "minilm", docids, True, init) for init in (True, False)}
    pretrained, scratch = (models[init].encoder.state_dict() for init in (True, False))
    assert pretrained.keys() == scratch.keys() and all(pretrained[k].shape == scratch[k].shape for k in pretrained)
    assert not torch.equal(
        pretrained["embeddings.word_embeddings.weight"], scratch["embeddings.word_embeddings.weight"]
    )
    with pytest.raises(ConfigError, match=r"--init must be pretrained or scratch, got 'random'"):
        train(config(beir, tmp_path / "m", tmp_path, init="random"))


def test_train_queries_come_only_from_a_train_split(tmp_path: Path):
    beir = write_beir(tmp_path / "gen", docs=DOCS, queries=QUERIES, qrels=QRELS)
    (beir / "qrels" / "train.tsv").write_text((beir / "qrels" / "test.tsv").read_text())
    cfg = config(beir, tmp_path / "m", tmp_path / "cache", dataset="scifact-train", eval_size=1, spans=1)
    dataset, use_queries = load_data(cfg)
    assert use_queries
    docids = build_docids(dataset.corpus, "atomic", {}, cfg.seed, tmp_path / "cache")
    train_set, held_out = split_examples(dataset, docids, use_queries, cfg)
    assert [e.source for e in held_out] == ["query"]
    assert sum(e.source == "query" for e in train_set) == len(QRELS) - 1
    assert held_out[0].text not in {e.text for e in train_set}
    with pytest.raises(ConfigError, match="--train-queries: dataset scifact has split 'test'"):
        load_data(config(beir, tmp_path / "m", tmp_path / "cache", train_queries=True))
