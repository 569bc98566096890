"""The listwise reranker end to end with the real SmolLM2-135M weights (GGUF, via transformers)."""

import json
import shutil
import threading
import time
from pathlib import Path

import pytest
from hydra.utils import instantiate

from rankbench.harness import cost
from rankbench.harness.errors import ConfigError
from rankbench.harness.experiment import prepare, run_experiment
from rankbench.harness.pipeline import Pipeline
from rankbench.harness.runfile import read_trec_run
from rankbench.rerankers.windows import sliding_windows
from tests.conftest import cache_use, cached_answers, run_python
from tests.llm_server import smollm2_gguf

QUERIES, DEPTH, WINDOW, STRIDE = 3, 10, 5, 3
SMALL = [f"max_queries={QUERIES}", f"reranker.depth={DEPTH}", f"reranker.window={WINDOW}", f"reranker.stride={STRIDE}"]


def listwise(make_cfg, *overrides: str):
    return make_cfg(*SMALL, "reranker.passage_tokens=40", *overrides)


def stats_of(outcome) -> dict:
    return json.loads((outcome.run_dir / "metrics.json").read_text())["reranker_stats"]


def planned_requests(cfg, first: dict) -> list:
    """The requests the reranker's dry run lists for the first stage's heads (harness/components.py)."""
    dataset, queries, _ = prepare(cfg)
    stage = Pipeline.from_config(cfg).rerankers[0]
    reranker = instantiate(stage.component_cfg)
    plan = reranker.llm_requests(queries, {qid: hits[:DEPTH] for qid, hits in first.items()}, dataset.corpus)
    assert not reranker.llm.weights_loaded  # listing requests reads the tokenizer only
    return plan.requests


def assert_permutation_of(reranked: dict, first: dict) -> None:
    for qid, hits in first.items():
        assert sorted(d for d, _ in reranked[qid]) == sorted(d for d, _ in hits)
        assert [d for d, _ in reranked[qid][DEPTH:]] == [d for d, _ in hits[DEPTH:]]  # tail untouched


@pytest.mark.slow
@pytest.mark.parametrize("reranker", ["listwise", "listwise_first_token"])
def test_reranks_a_permutation_records_calls_and_a_rerun_makes_none(make_cfg, reranker):
    first = read_trec_run(run_experiment(make_cfg(f"max_queries={QUERIES}")).run_dir / "run.trec")
    outcome = run_experiment(listwise(make_cfg, f"reranker={reranker}"))
    reranked = read_trec_run(outcome.run_dir / "run.trec")
    assert_permutation_of(reranked, first)
    assert any([d for d, _ in reranked[q][:DEPTH]] != [d for d, _ in first[q][:DEPTH]] for q in first)

    windows = len(sliding_windows(DEPTH, WINDOW, STRIDE)) * QUERIES
    stats = stats_of(outcome)
    assert stats["llm_calls"] == windows and stats["llm_cached"] == 0 and stats["llm_failed"] == 0
    assert stats["prompt_tokens"] > windows * WINDOW * 20  # five passages of up to 40 tokens per window
    assert (stats["completion_tokens"] > 0) == (reranker == "listwise")  # first_token generates nothing
    assert set(stats["per_query"]) == set(first)
    assert int(outcome.row["rerank_llm_calls"]) == windows
    assert stats["llm_weights_loaded"] is True and "rerank_llm_weights_loaded" not in outcome.row  # no bool column

    planned = planned_requests(listwise(make_cfg, f"reranker={reranker}"), first)  # replays the cached answers
    assert len(planned) == windows and all(r.cached for r in planned)
    assert sum(r.prompt_tokens for r in planned) == stats["prompt_tokens"]  # the very windows, counted exactly

    again = run_experiment(listwise(make_cfg, f"reranker={reranker}", "overwrite=true"))
    assert cache_use(again.run_dir)["stages"] == {"hit": 1}  # the stage's run was reused: no model loaded
    assert read_trec_run(again.run_dir / "run.trec") == reranked
    shutil.rmtree(Path(again.row["run_path"]).parents[2] / "cache" / "stages")  # runs/cache/stages
    answered = run_experiment(listwise(make_cfg, f"reranker={reranker}", "overwrite=true"))
    assert cache_use(answered.run_dir)["stages"] == {"built": 1}
    assert stats_of(answered)["llm_calls"] == 0 and stats_of(answered)["llm_cached"] == windows  # answer cache
    assert stats_of(answered)["llm_weights_loaded"] is False  # every answer cached: the weights were never read
    assert read_trec_run(answered.run_dir / "run.trec") == reranked


@pytest.mark.slow
def test_full_ranking_makes_one_call_per_query_and_refuses_what_does_not_fit(make_cfg):
    outcome = run_experiment(listwise(make_cfg, "reranker=listwise", "reranker.strategy=full"))
    assert stats_of(outcome)["llm_calls"] == QUERIES
    too_long = listwise(
        make_cfg,
        "reranker=listwise",
        "reranker.strategy=full",
        "reranker.depth=100",
        "reranker.passage_tokens=200",
    )
    with pytest.raises(ConfigError, match=r"beyond the model's 8192.*reranker\.passage_tokens"):
        run_experiment(too_long)


@pytest.mark.slow
def test_openai_backend_run_survives_a_server_stopped_mid_run(make_cfg, start_llm_server, tmp_path):
    """Against llama.cpp's real server: answered windows count as calls, the rest fail, the run completes."""
    server = start_llm_server(threads=2)
    cfg = listwise(
        make_cfg,
        "reranker=listwise",
        "llm@reranker.llm=openai",
        f"reranker.llm.base_url={server.base_url}",
        "reranker.llm.retries=1",
        "reranker.llm.backoff=0.05",
        "reranker.llm.concurrency=2",
    )
    first = read_trec_run(run_experiment(make_cfg(f"max_queries={QUERIES}")).run_dir / "run.trec")
    outcome: list = []
    job = threading.Thread(target=lambda: outcome.append(run_experiment(cfg)))
    job.start()
    answers = tmp_path / "runs" / "cache" / "llm-answers"
    while job.is_alive() and cached_answers(answers) < 2:
        time.sleep(0.05)
    server.stop()
    job.join(timeout=600)
    (result,) = outcome
    stats = stats_of(result)
    windows = len(sliding_windows(DEPTH, WINDOW, STRIDE)) * QUERIES
    assert stats["llm_calls"] >= 2 and stats["llm_failed"] >= 1
    assert stats["llm_calls"] + stats["llm_failed"] == windows
    assert int(result.row["rerank_llm_failed"]) == stats["llm_failed"]
    assert_permutation_of(read_trec_run(result.run_dir / "run.trec"), first)


@pytest.mark.slow
def test_estimate_only_prices_every_window_without_calling_the_llm_or_writing_a_row(tmp_path):
    """An API model behind an address that cannot be reached: the estimate must not need it."""
    runs = tmp_path / "runs"
    result = run_python(
        "evaluate.py",
        *SMALL,
        "reranker=listwise",
        "reranker.passage_tokens=40",
        "llm@reranker.llm=openai",
        "reranker.llm.base_url=https://llm.invalid/v1",
        "reranker.llm.model=gpt-4o-mini",
        f"reranker.llm.tokenizer={smollm2_gguf()}",
        f"runs_dir={runs}",
        "estimate_only=true",
    )
    windows = len(sliding_windows(DEPTH, WINDOW, STRIDE)) * QUERIES
    assert f"{windows} calls (0 answers cached)" in result.stdout
    per_input, per_output = cost.price("gpt-4o-mini")
    prompt = int(result.stdout.split(" prompt + ")[0].rsplit(" ", 1)[1].replace(",", ""))
    assert prompt > windows * WINDOW * 20  # five passages of up to 40 tokens per window
    spans = sliding_windows(DEPTH, WINDOW, STRIDE)
    completion = sum(6 * (end - start) + 8 for start, end in spans) * QUERIES  # each answer counted at its cap
    assert f"{prompt:,} prompt + {completion:,} completion tokens" in result.stdout
    assert f"${(prompt * per_input + completion * per_output) / 1e6:,.4f}" in result.stdout
    assert not (runs / "leaderboard.csv").exists()
    assert cached_answers(runs / "cache" / "llm-answers") == 0
