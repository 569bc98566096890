"""Cross-encoder training and reranking with real MiniLM weights on a tiny inline BEIR folder."""

from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rankbench.harness.errors import ConfigError
from rankbench.harness.experiment import run_experiment
from rankbench.harness.models import resolve_model, weights_digest
from rankbench.harness.runfile import read_trec_run
from rankbench.harness.training import PAUSED, unfinished
from rankbench.harness.types import Doc, Query
from rankbench.rerankers.cross_encoder import CrossEncoder, NotACrossEncoder
from rankbench.rerankers.train import CrossEncoderTrainer, TrainConfig, main, train
from tests.conftest import write_beir

# Queries share words with several documents, so BM25 retrieves hard negatives for each.
DOCS = [
    {"_id": "d1", "title": "Goldfish", "text": "Goldfish grow as large as their tank allows."},
    {"_id": "d2", "title": "Goldfish care", "text": "Goldfish kept in a small tank need clean water every day."},
    {"_id": "d3", "title": "Cats", "text": "Cats sleep for most of the day, often sixteen hours."},
    {"_id": "d4", "title": "Feeding cats", "text": "Most owners feed cats twice a day; kittens grow fast."},
    {"_id": "d5", "title": "Wifi", "text": "Wifi and bluetooth are wireless radio standards."},
    {"_id": "d6", "title": "Chargers", "text": "Wireless chargers use neither bluetooth nor wifi radio."},
    {"_id": "d7", "title": "Tomatoes", "text": "Tomatoes grow best in warm sunny gardens with water."},
    {"_id": "d8", "title": "Daylight", "text": "Day length changes how long plants grow and how cats sleep."},
]
QUERIES = [
    {"_id": "q1", "text": "how large do goldfish grow in a tank"},
    {"_id": "q2", "text": "how long do cats sleep in a day"},
    {"_id": "q3", "text": "which wireless radio standards exist"},
    {"_id": "q4", "text": "what do tomatoes need to grow"},
]
QRELS = [("q1", "d1", 1), ("q2", "d3", 1), ("q3", "d5", 1), ("q4", "d7", 1)]
STEPS = 8  # 4 queries, 4 per batch: one step per epoch


def tiny_config(root: Path, out: str, **changes) -> TrainConfig:
    settings = {
        "dataset": "scifact",
        "overrides": [f"dataset.path={root / 'beir'}"],
        "data_root": None,
        "cache_dir": str(root / "cache"),
        "max_length": 64,
        "negatives": 2,
        "negatives_depth": 10,
        "batch_queries": 4,
        "epochs": float(STEPS),
        "lr": 1e-4,
        "warmup": 0.0,
        "checkpoint_every": 2,
    }
    return TrainConfig(out=str(root / out), **(settings | changes))


def margin(folder: Path) -> float:
    """Mean over queries of (positive's score - mean negative score) on the tiny set."""
    model = CrossEncoder(str(folder), max_length=64)
    docs = {d["_id"]: Doc(d["_id"], d["title"], d["text"]) for d in DOCS}
    gaps = []
    for q in QUERIES:
        positive = next(d for qid, d, _ in QRELS if qid == q["_id"])
        scores = model.score([(Query(q["_id"], q["text"]), docs[d]) for d in docs])
        pos = scores[list(docs).index(positive)]
        gaps.append(pos - (sum(scores) - pos) / (len(scores) - 1))
    return sum(gaps) / len(gaps)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """One uninterrupted run, and one interrupted after 2 steps then resumed by the same call."""
    root = tmp_path_factory.mktemp("ce")
    write_beir(root / "beir", docs=DOCS, queries=QUERIES, qrels=QRELS)
    train(tiny_config(root, "full"))
    train(tiny_config(root, "resumed", max_steps=2))  # the "kill": stops after a checkpoint at step 2
    early = root / "early"
    early.mkdir()
    for path in (root / "resumed").iterdir():
        if path.is_file():
            (early / path.name).write_bytes(path.read_bytes())
    train(tiny_config(root, "resumed"))  # rerun: continues from the checkpoint
    return {"root": root, "full": root / "full", "resumed": root / "resumed", "early": early}


def record(folder: Path) -> dict:
    return json.loads((folder / "training.json").read_text())


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


# 3 queries train (one batch, one step per epoch) and 1 is held out as dev: 3 steps, dev nDCG@10 at the end.
PAUSE_RECIPE = {"batch_queries": 3, "epochs": 3.0, "dev_queries": 1, "dev_depth": 8}
PAUSE_STEPS = 3


@pytest.fixture(scope="module")
def paused(trained) -> dict:
    """The same recipe trained in one go, and by the command with a budget too small for any work, rerun
    until it completes: each session pauses after its one guaranteed step (a deterministic pause)."""
    root = trained["root"]
    train(tiny_config(root, "whole", **PAUSE_RECIPE))
    argv = ["--out", str(root / "paused"), "--dataset", "scifact", "--overrides", f"dataset.path={root / 'beir'}"]
    argv += ["--cache-dir", str(root / "cache"), "--max-minutes", "1e-6"]
    learned = tiny_config(root, "", **PAUSE_RECIPE).learned()
    argv += [arg for k, v in learned.items() if k not in ("dataset", "overrides") for arg in (flag(k), str(v))]
    sessions = []
    while not sessions or not sessions[-1]["complete"]:
        try:
            main(argv)
            sessions.append({"exit": 0, **record(root / "paused")})
        except SystemExit as e:
            sessions.append({"exit": e.code, **record(root / "paused")})
        assert len(sessions) <= PAUSE_STEPS, "a rerun made no progress"
    return {"whole": root / "whole", "paused": root / "paused", "sessions": sessions}


def test_loss_falls_and_positive_rises(trained):
    losses = record(trained["full"])["losses"]
    assert len(losses) == STEPS
    assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2 - 0.05
    assert margin(trained["full"]) > margin(trained["early"]) and margin(trained["full"]) > 0


def test_resume_continues_and_matches_an_uninterrupted_run(trained):
    """The step counter goes on from the checkpoint; losses and weights equal the uninterrupted run's."""
    early, resumed, full = record(trained["early"]), record(trained["resumed"]), record(trained["full"])
    assert early["steps"] == 2 and not early["complete"]
    assert resumed["steps"] == STEPS and resumed["complete"]
    assert resumed["losses"] == pytest.approx(full["losses"], abs=1e-4)
    a, b = load_file(trained["full"] / "model.safetensors"), load_file(trained["resumed"] / "model.safetensors")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4
    assert resumed["base_digest"] == weights_digest(resolve_model("sentence-transformers/all-MiniLM-L6-v2"))
    assert resumed["negatives_source"]["retriever"]["name"] == "bm25" and resumed["command"]


def test_rerank_keeps_every_first_stage_document(trained, make_cfg, tmp_path: Path):
    beir = trained["root"] / "beir"
    first = run_experiment(make_cfg(f"dataset.path={beir}"))
    bm25 = read_trec_run(first.run_dir / "run.trec")
    for depth in (2, 100):  # 100: every query has fewer first-stage hits than the depth
        model = f"reranker.model={trained['full']}"
        outcome = run_experiment(
            make_cfg(f"dataset.path={beir}", "reranker=cross_encoder", model, f"reranker.depth={depth}")
        )
        reranked = read_trec_run(outcome.run_dir / "run.trec")
        for qid, hits in bm25.items():
            assert sorted(d for d, _ in reranked[qid]) == sorted(d for d, _ in hits)
            assert [d for d, _ in reranked[qid][depth:]] == [d for d, _ in hits[depth:]]  # tail untouched
        assert outcome.row["reranker_model_hash"] == weights_digest(trained["full"])
        assert outcome.row["reranker_model"] == str(trained["full"])
        stats = json.loads((outcome.run_dir / "metrics.json").read_text())["reranker_stats"]
        head = sum(min(depth, len(hits)) for hits in bm25.values())
        cached = 0 if depth == 2 else sum(min(2, len(hits)) for hits in bm25.values())
        assert stats["pairs_scored"] == head - cached  # the deeper run scores only pairs not in the cache
    with open(tmp_path / "runs" / "leaderboard.csv", newline="") as f:
        assert [r["reranker_model_hash"] for r in csv.DictReader(f)][-1] == weights_digest(trained["full"])
    assert outcome.metrics["nDCG@10"] > 0.9  # the trained tiny model ranks its training positives first


def test_a_model_retrained_in_place_is_run_and_scored_again(trained, make_cfg, tmp_path: Path):
    """Same folder name, new weights: neither the kept run nor the score cache may serve the old model's results."""
    folder = shutil.copytree(trained["early"], tmp_path / "ce")
    cfg = make_cfg(f"dataset.path={trained['root'] / 'beir'}", "reranker=cross_encoder", f"reranker.model={folder}")
    before = run_experiment(cfg)
    assert before.row is not None and run_experiment(cfg).row is None  # unchanged: the complete run is kept
    for path in trained["full"].iterdir():
        if path.is_file():
            shutil.copy(path, folder / path.name)
    after = run_experiment(cfg)
    assert after.row is not None and after.run_dir != before.run_dir
    assert after.row["reranker_model_hash"] == weights_digest(trained["full"]) != before.row["reranker_model_hash"]
    stats = json.loads((after.run_dir / "metrics.json").read_text())["reranker_stats"]
    assert stats["pairs_scored"] == sum(len(h) for h in read_trec_run(after.run_dir / "run.trec").values())


def test_interpolate_dev_uses_the_weight_recorded_in_training_json(trained, make_cfg, tmp_path: Path):
    folder = shutil.copytree(trained["full"], tmp_path / "ce")
    record = json.loads((folder / "training.json").read_text())
    record["dev"] = [{"step": STEPS, "best_interpolation_weight": 0.9}]  # what --dev-queries would have chosen
    (folder / "training.json").write_text(json.dumps(record))
    base = [f"dataset.path={trained['root'] / 'beir'}", "reranker=cross_encoder", f"reranker.model={folder}"]
    dev = run_experiment(make_cfg(*base, "reranker.interpolate=dev"))
    number = run_experiment(make_cfg(*base, "reranker.interpolate=0.9"))
    alone = run_experiment(make_cfg(*base))
    assert dev.row["reranker_interpolate"] == number.row["reranker_interpolate"] == "0.9"
    assert "reranker_interpolate" not in alone.row
    assert read_trec_run(dev.run_dir / "run.trec") == read_trec_run(number.run_dir / "run.trec")
    assert read_trec_run(dev.run_dir / "run.trec") != read_trec_run(alone.run_dir / "run.trec")
    assert len({dev.run_dir, number.run_dir, alone.run_dir}) == 3  # three configs, three hashes
    for later in (number, alone):  # the weight is not part of the score cache's key: scores are shared
        assert json.loads((later.run_dir / "metrics.json").read_text())["reranker_stats"]["pairs_scored"] == 0


def test_interpolate_dev_without_a_dev_weight_names_the_file_and_the_key(trained):
    """The fixture trains without --dev-queries, so its training.json records no dev evaluation."""
    scorer = CrossEncoder(str(trained["full"]))
    with pytest.raises(ConfigError, match=r"dev\[-1\]\.best_interpolation_weight") as error:
        scorer.named_weight("dev")
    assert str(trained["full"] / "training.json") in str(error.value) and "no dev evaluation" in str(error.value)
    with pytest.raises(ConfigError, match="interpolate='best': CrossEncoder resolves no named weight"):
        scorer.named_weight("best")


def test_long_documents_are_truncated_and_counted(tmp_path: Path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base = resolve_model("sentence-transformers/all-MiniLM-L6-v2")
    AutoModelForSequenceClassification.from_pretrained(base, num_labels=1).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(base).save_pretrained(tmp_path)
    model = CrossEncoder(str(tmp_path), max_length=16)
    query = Query("q", "how large do goldfish grow")
    head = "Goldfish grow as large as their tank allows."
    pairs = [
        (query, Doc("a", "", head + " filler" * 100)),
        (query, Doc("b", "", head + " other words" * 100)),
        (query, Doc("c", "", "Goldfish.")),
    ]
    scores = model.score(pairs)
    assert model.pairs_truncated == 2 and model.pairs_scored == 3
    assert scores[0] == pytest.approx(scores[1], abs=1e-3)  # only what lies past max_length differs


def test_folder_without_a_classification_head_is_refused():
    folder = resolve_model("sentence-transformers/all-MiniLM-L6-v2")
    with pytest.raises(NotACrossEncoder, match=r"python -m rankbench\.rerankers\.train") as error:
        CrossEncoder("sentence-transformers/all-MiniLM-L6-v2")
    assert str(folder) in str(error.value) and "BertModel" in str(error.value)


def test_two_label_models_score_the_log_odds():
    from rankbench.rerankers.cross_encoder import pair_scores

    logits = torch.tensor([[0.5, 2.0], [1.0, -1.0]])
    assert pair_scores(logits).tolist() == pytest.approx([1.5, -2.0])


def test_a_paused_training_goes_on_when_rerun_and_gives_the_uninterrupted_model(paused):
    """A budget only pauses: each rerun of the same command gets a budget of its own and goes on from the
    checkpoint, and the finished model equals the one trained in one session."""
    sessions = paused["sessions"]
    assert [s["steps"] for s in sessions] == list(range(1, PAUSE_STEPS + 1))
    assert [s["complete"] for s in sessions] == [False] * (PAUSE_STEPS - 1) + [True]
    assert [s["exit"] for s in sessions] == [PAUSED] * (PAUSE_STEPS - 1) + [0]
    assert sessions[-1]["total_steps"] == PAUSE_STEPS
    whole, resumed = record(paused["whole"]), record(paused["paused"])
    assert whole["steps"] == resumed["steps"] == PAUSE_STEPS and whole["complete"]
    ndcg = "dev_ndcg@10_reranked"
    assert resumed["dev"][-1]["step"] == whole["dev"][-1]["step"] == PAUSE_STEPS
    assert resumed["dev"][-1][ndcg] == pytest.approx(whole["dev"][-1][ndcg], abs=1e-3)
    assert weights_digest(paused["paused"]) == weights_digest(paused["whole"])
    # training.json says the model took three sittings, one step each, and on which CPU
    steps = [(s["from_step"], s["to_step"]) for s in resumed["sessions"]]
    assert steps == [(0, 1), (1, 2), (2, 3)] and len(whole["sessions"]) == 1
    assert all(s["cpu"] and s["wall_s"] > 0 and "cpu_flags" in s for s in resumed["sessions"])


def test_a_pause_says_how_far_it_got_and_how_to_continue(trained, tmp_path: Path):
    folder = shutil.copytree(trained["early"], tmp_path / "ce")
    args = tiny_config(trained["root"], str(folder), max_minutes=5.0)
    message = unfinished(record(folder), args)
    assert f"paused by --max-minutes 5 at step 2 of {STEPS}" in message and str(folder) in message
    assert '"complete": false' in message and "rerun the same command to continue" in message
    stopped = unfinished(record(folder), tiny_config(trained["root"], str(folder), max_steps=2))
    assert stopped.startswith("stopped by --max-steps 2 at step 2") and "rerun without --max-steps" in stopped


def test_resuming_with_another_dtype_is_refused_naming_it(trained, tmp_path: Path):
    """The checkpoint of the fixture's resumed run was written in float32 (the default)."""
    folder = shutil.copytree(trained["resumed"], tmp_path / "ce")
    with pytest.raises(ConfigError, match=r"--dtype: 'float32' in the checkpoint, 'bfloat16' now") as error:
        train(tiny_config(trained["root"], str(folder), dtype="bfloat16"))
    assert str(folder / "checkpoint" / "state.pt") in str(error.value)


def test_training_refuses_dtype_auto_naming_the_flag(trained):
    with pytest.raises(ConfigError, match=r"--dtype \(recipe key dtype\) is 'auto'"):
        CrossEncoderTrainer(tiny_config(trained["root"], "auto", dtype="auto"))


def test_an_incomplete_model_warns_and_is_flagged_in_the_leaderboard_row(trained, make_cfg, tmp_path: Path, caplog):
    """The fixture's early copy stopped at step 2 of 8; the flag comes from training.json, so a rerun whose
    reranking stage is served from the cache carries it too."""
    beir = trained["root"] / "beir"
    cfg = make_cfg(f"dataset.path={beir}", "reranker=cross_encoder", f"reranker.model={trained['early']}")
    with caplog.at_level(logging.WARNING):
        early = run_experiment(cfg)
    assert f"model {trained['early']} is incomplete: its training stopped at step 2 of {STEPS}" in caplog.text
    assert early.row["reranker_model_complete"] == "false"
    again = run_experiment(
        make_cfg(
            f"dataset.path={beir}", "reranker=cross_encoder", f"reranker.model={trained['early']}", "overwrite=true"
        )
    )
    assert json.loads((again.run_dir / "metrics.json").read_text())["stage_cache"]["reranker"] == {"stages": {"hit": 1}}
    assert again.row["reranker_model_complete"] == "false"
    caplog.clear()
    full = run_experiment(
        make_cfg(f"dataset.path={beir}", "reranker=cross_encoder", f"reranker.model={trained['full']}")
    )
    assert full.row["reranker_model_complete"] == "true" and "incomplete" not in caplog.text
    with open(tmp_path / "runs" / "leaderboard.csv", newline="") as f:
        assert [r["reranker_model_complete"] for r in csv.DictReader(f)] == ["false", "false", "true"]
