"""What a user meets with bad data, twice-launched sweeps, stops from outside and a core-only install."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rankbench.harness.errors import DataError
from rankbench.harness.experiment import run_experiment
from rankbench.harness.leaderboard import read_rows
from tests.conftest import PROJECT, SHARED_DATA, TINY_DOCS, cached_answers, run_python, write_beir

EVALUATE = str(PROJECT / "evaluate.py")


def test_qrels_that_judge_no_topic_stop_the_run_and_write_nothing(make_cfg, tmp_path: Path):
    data = write_beir(tmp_path / "mismatch", qrels=[("Q-1", "d1", 1), ("Q-2", "d2", 1)])
    with pytest.raises(DataError, match=r"mismatch/qrels/test\.tsv\) judge none of the 3 topics.*Q-1"):
        run_experiment(make_cfg("dataset=local", f"dataset.path={data}"))
    runs = tmp_path / "runs"
    assert not (runs / "local").exists() and not (runs / "leaderboard.csv").exists()


def test_user_data_keeps_a_document_whose_id_equals_a_query_id(make_cfg, tmp_path: Path):
    """TINY_DOCS has a document "q2", judged relevant for query "q2": user data never drops it."""
    data = write_beir(tmp_path / "own", qrels=[("q1", "d1", 1), ("q2", "q2", 1), ("q3", "d3", 2)])
    cfg = make_cfg("dataset=local", f"dataset.path={data}", "dataset.name=own")
    assert cfg.retriever.remove_query is False
    outcome = run_experiment(cfg)
    hits = [line.split()[2] for line in (outcome.run_dir / "run.trec").read_text().splitlines() if line[:3] == "q2 "]
    assert hits[0] == "q2" and outcome.metrics["nDCG@10"] == pytest.approx(1.0)


def test_remove_query_is_on_only_where_queries_are_corpus_documents(make_cfg):
    assert make_cfg("dataset=arguana").retriever.remove_query is True
    for name in ["scifact", "nfcorpus", "fiqa", "scidocs", "trec-covid", "dl19", "local"]:
        assert make_cfg(f"dataset={name}").retriever.remove_query is False, name
    assert make_cfg("dataset=arguana", "retriever=hybrid").retriever.stages.bm25.remove_query is True


def test_remove_query_warns_with_the_count_of_self_judged_pairs(make_cfg, tmp_path: Path, caplog):
    data = write_beir(tmp_path / "self", qrels=[("q1", "d1", 1), ("q2", "q2", 1), ("q3", "d3", 2)])
    with caplog.at_level(logging.WARNING):
        outcome = run_experiment(make_cfg("dataset=local", f"dataset.path={data}", "dataset.remove_query=true"))
    assert "remove_query is on, and the qrels judge 1 query-document pairs with the same id (1 relevant" in caplog.text
    assert outcome.metrics["nDCG@10"] < 1.0  # q2's only relevant document was dropped, as warned
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        run_experiment(make_cfg("dataset=local", f"dataset.path={data}"))
    assert "remove_query" not in caplog.text


def test_three_simultaneous_runs_of_one_config_leave_one_row(tmp_path: Path):
    data = write_beir(tmp_path / "tiny")
    args = [sys.executable, EVALUATE, f"runs_dir={tmp_path / 'runs'}", "dataset=local", f"dataset.path={data}"]
    env = {**os.environ, "RANKBENCH_DATA_ROOT": str(SHARED_DATA)}
    procs = [subprocess.Popen(args, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    rows = read_rows(tmp_path / "runs" / "leaderboard.csv")
    assert len(rows) == 1
    assert sum("skipping bm25" in e for e in errors) == 2  # the later two found the first's complete run


def test_postings_export_shows_progress(tmp_path: Path, capfd):
    from rankbench.retrievers.bm25 import BM25
    from rankbench.retrievers.lucene_exact import export_postings

    bm25 = BM25(hits=10)
    bm25._build(list_corpus(), tmp_path / "index")
    capfd.readouterr()
    export_postings(tmp_path / "index", tmp_path / "postings", ["contents"])
    err = capfd.readouterr().err
    assert "export docids" in err and "4/4" in err
    assert "export contents postings" in err and "posting" in err


def list_corpus():
    from rankbench.harness.types import Doc

    class Tiny(list):
        source, fingerprint = "tiny", "tiny"

        def count_hint(self) -> int:
            return len(self)

    return Tiny(Doc(d["_id"], d["title"], d["text"]) for d in TINY_DOCS)


BLOCK_HEAVY = "import sys; [sys.modules.__setitem__(m, None) for m in {mods}]; sys.argv = {argv}; "
BLOCK_HEAVY += "import runpy; runpy.run_path({script!r}, run_name='__main__')"
NEURAL = ["torch", "transformers", "faiss", "matplotlib", "gguf", "httpx", "onnxruntime", "openai"]


def run_without(modules: list[str], *overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    """evaluate.py in a process where importing any of ``modules`` fails, as in a core-only install."""
    code = BLOCK_HEAVY.format(mods=modules, argv=["evaluate.py", *overrides], script=EVALUATE)
    return run_python("-c", code, cwd=cwd, check=False)


def test_bm25_runs_with_the_core_install_alone(tmp_path: Path):
    data = write_beir(tmp_path / "tiny")
    done = run_without(NEURAL, f"runs_dir={tmp_path / 'runs'}", "dataset=local", f"dataset.path={data}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(read_rows(tmp_path / "runs" / "leaderboard.csv")) == 1


def test_the_core_install_pins_the_pyserini_that_the_bench_extra_pins():
    """The Makefile installs pyserini's jar --no-deps for the core; pyproject's bench extra pins it whole."""
    import tomllib

    makefile = (PROJECT / "Makefile").read_text()
    [pin] = [line.split(":=")[1].strip() for line in makefile.splitlines() if line.startswith("PYSERINI :=")]
    bench = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["bench"]
    assert pin in bench


def test_a_missing_extra_names_the_install_command(tmp_path: Path):
    data = write_beir(tmp_path / "tiny")
    args = [f"runs_dir={tmp_path / 'runs'}", "dataset=local", f"dataset.path={data}", "retriever=dense"]
    done = run_without(["torch"], *args, cwd=tmp_path)
    assert done.returncode == 2
    assert "torch is not installed: it comes with rankbench's 'neural' extra" in done.stderr
    assert ".venv/bin/pip install -e '.[neural]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_resumable_turns_sigterm_into_one_line_and_the_shell_exit_code(tmp_path: Path):
    code = "import os, signal, time\nfrom rankbench.harness.signals import resumable\n"
    code += "with resumable('the cache is kept'):\n"
    code += "    open('started', 'w').close()\n    os.kill(os.getpid(), signal.SIGTERM)\n    time.sleep(30)\n"
    code += "open('after', 'w').close()\n"
    done = run_python("-c", code, cwd=tmp_path, env={"PYTHONPATH": str(PROJECT)}, check=False)
    assert done.returncode == 128 + signal.SIGTERM
    assert done.stderr.strip() == "stopped by SIGTERM: the cache is kept; rerun the same command to resume"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["started"]  # nothing after the stop ran


@pytest.mark.slow
def test_sigterm_mid_listwise_run_exits_cleanly_and_keeps_answers(tmp_path: Path):
    """The JVM (BM25) and torch (SmolLM2) share the process; SIGTERM once an answer is cached."""
    words = ["goldfish tank", "wifi radio", "cats sleep", "bluetooth phone", "wireless headphones"]
    queries = [{"_id": f"q{i}", "text": f"{words[i % 5]} {i}"} for i in range(30)]
    qrels = [(f"q{i}", TINY_DOCS[i % 4]["_id"], 1) for i in range(30)]
    data = write_beir(tmp_path / "runs" / "tiny", queries=queries, qrels=qrels)  # under runs/, checked below
    overrides = [f"runs_dir={tmp_path / 'runs'}", "dataset=local", f"dataset.path={data}", "reranker=listwise"]
    overrides += ["reranker.depth=4", "reranker.window=2", "reranker.stride=1", "reranker.passage_tokens=24"]
    env = {**os.environ, "RANKBENCH_DATA_ROOT": str(SHARED_DATA)}
    proc = subprocess.Popen([sys.executable, EVALUATE, *overrides], cwd=tmp_path, env=env, stderr=subprocess.PIPE)
    answers = tmp_path / "runs" / "cache"
    deadline = time.monotonic() + 600
    while cached_answers(answers) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before it could be stopped"
    kept = cached_answers(answers)
    proc.send_signal(signal.SIGTERM)
    stderr = proc.communicate(timeout=120)[1].decode()
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert "stopped by SIGTERM: finished work is kept" in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # no hs_err_pid*.log or anything else
    assert not list((tmp_path / "runs").rglob("hs_err_pid*")) and not (tmp_path / "runs" / "leaderboard.csv").exists()
    assert cached_answers(answers) >= kept >= 1

    done = run_python(EVALUATE, *overrides, cwd=tmp_path)
    [row] = read_rows(tmp_path / "runs" / "leaderboard.csv")
    stats = json.loads((Path(row["run_path"]) / "metrics.json").read_text())["reranker_stats"]
    assert stats["llm_cached"] >= kept and stats["llm_failed"] == 0, done.stderr[-2000:]  # paid answers kept
