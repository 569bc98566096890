"""LLM relevance judgments (harness/judge.py) and their agreement measures (harness/agreement.py).

The pure logic (parsing, pooling, hold-out, qrels, counts, κ, τ) runs against a scripted fake
backend on a tiny BEIR folder; one slow test judges SciFact pairs with SmolLM2 behind a real
llama.cpp server through the ``openai`` backend.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import ir_measures
import pytest
from omegaconf import OmegaConf
from scipy.stats import kendalltau
from sklearn.metrics import cohen_kappa_score

from rankbench.harness import agreement
from rankbench.harness.errors import ConfigError
from rankbench.harness.judge import (
    JudgePrompt,
    compose_config,
    cost_plan,
    estimate,
    holdout,
    judge,
    main,
    parse_grade,
    planned_requests,
    summary,
)
from rankbench.harness.response_cache import ResponseCache
from rankbench.harness.runfile import write_trec_run
from tests.fakes import ScriptedGradeBackend
from tests.llm_server import SMOLLM2_ALIAS

# Titles of tests/conftest.py's tiny corpus -> the scripted answer for any pair showing that document.
SCRIPT = {
    "Goldfish": "The passage answers the query.\nFinal score: 3",
    "Wifi": "Final Score: **1**",
    "Cats": "I am not sure about this one.",  # malformed: no grade
    "Bluetooth": "2",
}
RUN_A = {"q1": ["d1", "d2", "d3"], "q2": ["d2", "q2", "d1"], "q3": ["d3", "d1"]}
RUN_B = {"q1": ["d3", "d1"], "q2": ["q2", "d3"], "q3": ["d2", "d3"]}


def write_run(folder: Path, ranking: dict[str, list[str]], cfg) -> Path:
    """An evaluate.py-style run folder: run.trec plus the config.yaml naming its dataset."""
    folder.mkdir(parents=True)
    run = {qid: [(d, float(len(docs) - i)) for i, d in enumerate(docs)] for qid, docs in ranking.items()}
    write_trec_run(run, folder / "run.trec", tag="test")
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return folder


def read_tsv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


@pytest.mark.parametrize(
    ("answer", "grade"),
    [
        ("Final score: 2", 2),
        ("Score: 1 at first sight.\nFinal score: 3", 3),  # the last labelled grade counts
        ("**Final Score:** 0", 0),
        ("the final score is 1.", 1),
        ("Relevance: 2", 2),
        ("3", 3),
        (" **2**. ", 2),
        ("Final score: 5", None),  # out of range: malformed, not clipped
        ("Final score: 10", None),
        ("The passage is relevant.", None),
        ("", None),
        ("3 out of 3", None),  # not a labelled grade nor a bare number
    ],
)
def test_parse_grade(answer: str, grade: int | None) -> None:
    assert parse_grade(answer) == (grade, "malformed" if grade is None else "score")


NAMES = ("irrelevant", "related", "highly relevant", "perfectly relevant")
NAMED = JudgePrompt(system="s", user="{query} {passage}", grade_names=NAMES)


@pytest.mark.parametrize(
    ("answer", "read"),
    [
        ("The passage is highly relevant to the query, but not directly related to it.", (2, "name")),  # first
        ("It is irrelevant.", (0, "name")),
        ("Related, somewhat. Final score: 3", (3, "score")),  # a number wins over a name
        ("The passage is unrelated.", (None, "malformed")),  # whole phrases only
        ("The passage is not related to the query.", (None, "malformed")),  # negated
        ("It isn't related.", (None, "malformed")),
        ("The passage is relevant.", (None, "malformed")),  # not one of the scale's names
    ],
)
def test_parse_grade_by_name(answer: str, read: tuple) -> None:
    assert parse_grade(answer, NAMED) == read


def test_kappa_matches_a_hand_worked_table() -> None:
    # 2x2 table [[20, 5], [10, 15]]: p_o = 35/50 = 0.7, p_e = 0.5*0.6 + 0.5*0.4 = 0.5, kappa = 0.4
    human = [0] * 25 + [1] * 25
    llm = [0] * 20 + [1] * 5 + [0] * 10 + [1] * 15
    assert agreement.confusion_matrix(human, llm, (0, 1)) == [[20, 5], [10, 15]]
    assert agreement.cohen_kappa(human, llm, (0, 1)) == pytest.approx(0.4, abs=1e-12)
    assert agreement.cohen_kappa([1, 1], [1, 1], (0, 1)) is None  # p_e = 1: undefined, not 0 or 1
    assert agreement.cohen_kappa([], [], (0, 1)) is None


def test_kappa_equals_sklearn() -> None:
    rng = random.Random(7)
    for _ in range(20):
        human = [rng.choice((0, 1, 2, 3)) for _ in range(60)]
        llm = [min(3, max(0, h + rng.choice((-1, 0, 0, 1, 2)))) for h in human]
        expected = cohen_kappa_score(human, llm, labels=[0, 1, 2, 3])
        assert agreement.cohen_kappa(human, llm, (0, 1, 2, 3)) == pytest.approx(expected, abs=1e-12)


def test_tau_matches_hand_count_and_scipy() -> None:
    # pairs (1,2) and (1,3) concordant, (2,3) discordant: (2 - 1) / 3
    assert agreement.kendall_tau([0.5, 0.6, 0.7], [0.5, 0.7, 0.6]) == pytest.approx(1 / 3, abs=1e-12)
    first, second = [0.61, 0.64, 0.70, 0.64, 0.55], [0.50, 0.52, 0.60, 0.58, 0.52]  # ties on both sides
    assert agreement.kendall_tau(first, second) == pytest.approx(kendalltau(first, second).statistic, abs=1e-12)
    assert agreement.kendall_tau([0.5], [0.6]) is None
    assert agreement.kendall_tau([0.5, 0.5], [0.1, 0.2]) is None


def test_holdout_is_seeded_and_prefers_judged_nonrelevant() -> None:
    pooled = [("q1", f"d{i}") for i in range(20)]
    qrels = {"q1": {"d0": 1, "d1": 2, "d2": 1, "d3": 1, "d4": 0}}
    relevant, nonrelevant, kind = holdout(pooled, qrels, size=2, seed=3)
    assert len(relevant) == 2 and all(qrels["q1"][d] > 0 for _, d in relevant)
    assert (nonrelevant, kind) == ([("q1", "d4")], "judged")  # the one grade-0 row, not unjudged pairs
    assert holdout(pooled, qrels, size=2, seed=3) == (relevant, nonrelevant, kind)
    positives_only = {"q1": {d: g for d, g in qrels["q1"].items() if g > 0}}
    relevant, nonrelevant, kind = holdout(pooled, positives_only, size=10, seed=3)
    assert len(relevant) == 4 and len(nonrelevant) == 4 and kind == "assumed"
    assert not {d for _, d in nonrelevant} & set(positives_only["q1"])


def test_judge_writes_marked_qrels_counts_malformed_and_reruns_from_cache(tmp_path, tiny_beir) -> None:
    runs = tmp_path / "runs"
    run_cfg = OmegaConf.create({"dataset": {"name": "tiny", "path": str(tiny_beir), "split": "test"},
                                "max_queries": None, "measures": ["nDCG@10", "P@2"]})  # fmt: skip
    dirs = [write_run(runs / "tiny" / name / "h1", r, run_cfg) for name, r in (("a", RUN_A), ("b", RUN_B))]
    cfg = compose_config([f"runs_dir={runs}", "depth=2", "holdout.size=10", "data_root=null"])
    backend = ScriptedGradeBackend(SCRIPT)
    folder, report = judge(cfg, dirs, llm=backend)

    holes = {("q1", "d2"), ("q2", "q2"), ("q3", "d1"), ("q1", "d3"), ("q2", "d3"), ("q3", "d2")}
    counts = report["counts"]
    assert (counts["pool_pairs"], counts["holes"]) == (9, 6)
    assert counts["requests"] == 9 and backend.calls == 9  # six holes, three held-out human pairs
    assert (counts["calls"], counts["cached"], counts["failed"]) == (9, 0, 0)
    assert counts["malformed"] == 3  # every "Cats" pair: (q1,d3), (q2,d3) and held-out (q3,d3)
    assert counts["llm_judged"] == 4

    qrels = ir_measures.read_trec_qrels(str(folder / "qrels.augmented.txt"))
    got = {(q.query_id, q.doc_id): q.relevance for q in qrels}
    human = {("q1", "d1"): 1, ("q2", "d2"): 1, ("q3", "d3"): 2}
    llm = {("q1", "d2"): 1, ("q2", "q2"): 2, ("q3", "d1"): 3, ("q3", "d2"): 1}  # graded qrels: grades kept
    assert got == human | llm  # malformed pairs stay holes, never 0
    rows = read_tsv(folder / "judgments.tsv")
    assert {(r["qid"], r["docid"]): r["source"] for r in rows} == {p: "human" for p in human} | dict.fromkeys(
        holes, "llm"
    )
    assert {(r["qid"], r["docid"]) for r in rows if r["status"] == "malformed"} == {
        ("q1", "d3"),
        ("q2", "d3"),
        ("q3", "d3"),
    }
    assert all(r["grade"] == "" for r in rows if r["status"] == "malformed" and r["source"] == "llm")

    provenance = json.loads((folder / "judge.json").read_text())["provenance"]
    assert (provenance["model"], provenance["backend"]) == ("scripted-grades", "scripted")
    assert len(provenance["prompt_hash"]) == 12 and provenance["date"].startswith("20")
    assert provenance["grade_map"] == {"0": 0, "1": 1, "2": 2, "3": 3}

    measures = report["measures"]["a (h1)"]
    assert measures["original"]["Judged@2"] == pytest.approx(0.5)  # one human-judged document in each top 2
    assert measures["augmented"]["Judged@2"] == pytest.approx(1.0)  # every top-2 pair of run a was graded
    expected_qrels = {}
    for (qid, docid), grade in (human | llm).items():
        expected_qrels.setdefault(qid, {})[docid] = grade
    p2 = ir_measures.calc_aggregate([ir_measures.P @ 2], expected_qrels, _run(RUN_A))
    assert measures["augmented"]["P@2"] == pytest.approx(p2[ir_measures.P @ 2])

    held = [r for r in rows if r["held_out"] == "true"]
    assert len(held) == 6 and report["agreement"]["nonrelevant_kind"] == "assumed"
    graded = [r for r in held if r["llm_grade"] != ""]
    # held-out llm rows are assumed non-relevant; humans graded 0-2 here, so relevant means grade >= 2
    human_bin = [int(r["source"] == "human" and int(r["grade"]) >= 2) for r in graded]
    llm_bin = [int(int(r["llm_grade"]) >= 2) for r in graded]
    assert report["agreement"]["pairs"] == len(graded)
    expected = agreement.cohen_kappa(human_bin, llm_bin, (0, 1))
    assert report["agreement"]["kappa_binary_ge2"] == (None if expected is None else pytest.approx(expected))
    assert report["agreement"]["tau"]["systems"] == 2

    table = summary(report)
    assert "| a (h1) |" in table and "Judged@2 aug" in table and "malformed 3" in table

    again = ScriptedGradeBackend(SCRIPT)
    folder2, report2 = judge(cfg, dirs, llm=again)
    assert again.calls == 0 and report2["counts"]["calls"] == 0 and report2["counts"]["cached"] == 9
    assert folder2 == folder and report2["counts"]["malformed"] == 3
    assert getattr(again, "loads", 0) == 0 and report2["counts"]["seconds"] == 0.0  # nothing to load or time


def test_the_estimate_counts_what_the_judge_then_spends(tmp_path, tiny_beir) -> None:
    runs = tmp_path / "runs"
    run_cfg = OmegaConf.create({"dataset": {"name": "tiny", "path": str(tiny_beir), "split": "test"},
                                "max_queries": None, "measures": ["nDCG@10"]})  # fmt: skip
    dirs = [write_run(runs / "tiny" / name / "h1", r, run_cfg) for name, r in (("a", RUN_A), ("b", RUN_B))]
    cfg = compose_config([f"runs_dir={runs}", "depth=2", "holdout.size=10", "data_root=null", "max_tokens=7"])
    backend = ScriptedGradeBackend(SCRIPT)
    cache = ResponseCache(runs / "cache" / "llm-answers", backend.identity())
    try:
        before = cost_plan(planned_requests(cfg, dirs, backend), backend, cache)
    finally:
        cache.close()
    assert backend.calls == 0 and len(before.requests) == 9 and not any(r.cached for r in before.requests)
    assert [r.max_tokens for r in before.requests] == [7] * 9  # completions counted at their cap

    _, report = judge(cfg, dirs, llm=backend)
    counts = report["counts"]
    assert backend.loads == 1 and counts["calls"] == 9  # weights made ready once, before the timed calls
    assert sum(r.prompt_tokens for r in before.requests) == counts["prompt_tokens"]  # the backend's own count

    after = estimate(cfg, dirs, llm=ScriptedGradeBackend(SCRIPT))  # every answer cached: no calibration either
    assert (after.calls, after.cached, after.prompt_tokens, after.seconds) == (0, 9, 0, 0.0)


def _run(ranking: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    return {qid: {d: float(len(docs) - i) for i, d in enumerate(docs)} for qid, docs in ranking.items()}


def test_binary_qrels_get_binary_llm_grades(tmp_path, tiny_beir) -> None:
    from tests.conftest import write_beir

    binary = write_beir(tmp_path / "binary", qrels=[("q1", "d1", 1), ("q2", "d2", 1), ("q3", "d3", 1)])
    run_cfg = OmegaConf.create({"dataset": {"name": "bin", "path": str(binary), "split": "test"}, "measures": ["P@2"]})
    dirs = [write_run(tmp_path / "runs" / "bin" / "a" / "h", RUN_A, run_cfg)]
    cfg = compose_config([f"runs_dir={tmp_path / 'runs'}", "depth=2", "data_root=null"])
    folder, report = judge(cfg, dirs, llm=ScriptedGradeBackend(SCRIPT))
    got = {
        (q.query_id, q.doc_id): q.relevance for q in ir_measures.read_trec_qrels(str(folder / "qrels.augmented.txt"))
    }
    # run a's holes at depth 2: (q1,d2) Wifi 1 -> 0, (q2,q2) Bluetooth 2 -> 1, (q3,d1) Goldfish 3 -> 1
    assert {p: got[p] for p in [("q1", "d2"), ("q2", "q2"), ("q3", "d1")]} == {
        ("q1", "d2"): 0,
        ("q2", "q2"): 1,
        ("q3", "d1"): 1,
    }
    assert report["agreement"]["kappa_graded"] is None  # humans graded 0/1: no graded kappa against 0-3
    assert report["agreement"]["tau"]["value"] is None  # one system: no ranking to compare


def test_bad_inputs_name_what_is_wrong(tmp_path) -> None:
    with pytest.raises(ConfigError, match="depth"):
        judge(compose_config(["depth=0"]), [tmp_path], llm=ScriptedGradeBackend(SCRIPT))
    assert main([str(tmp_path / "missing"), "llm=openai"]) == 2  # no run.trec: a clear error, exit code 2
    with pytest.raises(ConfigError, match=r"judge\.yaml"):
        compose_config(["no_such_key=1"])


# SciFact test queries 1 and 3 (the first two in natural order) with their one relevant document each
# first, then documents the qrels judge for other queries only: holes for these two.
SCIFACT_A = {"1": ["31715818", "4381486", "9745001"], "3": ["14717500", "6277638", "11603066"]}
SCIFACT_B = {"1": ["4381486", "13734012", "31715818"], "3": ["9433958", "14717500", "6277638"]}


@pytest.mark.slow
def test_scifact_pairs_judged_by_smollm2_behind_llama_cpp(tmp_path, make_cfg, llm_server, capsys) -> None:
    run_cfg = make_cfg("max_queries=2")
    runs = tmp_path / "runs"
    dirs = [write_run(runs / "scifact" / n, r, run_cfg) for n, r in (("bm25/x", SCIFACT_A), ("dense/y", SCIFACT_B))]
    overrides = [f"runs_dir={runs}", f"data_root={run_cfg.data_root}", "depth=3", "holdout.size=2"]
    overrides += ["llm=openai", f"llm.base_url={llm_server.base_url}", "llm.concurrency=1", "llm.timeout=600"]
    overrides += ["passage_tokens=96", "max_tokens=40"]
    folder, report = judge(compose_config(overrides), dirs)

    counts = report["counts"]
    assert (counts["queries"], counts["pool_pairs"], counts["holes"]) == (2, 8, 6)
    assert counts["requests"] == 8 and counts["calls"] == 8 and counts["cached"] == 0 and counts["failed"] == 0
    assert counts["prompt_tokens"] > 8 * 150 and 0 < counts["completion_tokens"] <= 8 * 40
    assert (
        counts["llm_judged"]
        + sum(1 for r in read_tsv(folder / "judgments.tsv") if r["source"] == "llm" and r["status"] == "malformed")
        == 6
    )  # every hole is graded or counted malformed

    provenance = report["provenance"]
    assert (provenance["model"], provenance["backend"]) == (SMOLLM2_ALIAS, "openai")
    assert provenance["llm_identity"]["base_url"] == llm_server.base_url
    assert provenance["grade_map"] == {"0": 0, "1": 0, "2": 1, "3": 1}  # SciFact's qrels are binary
    assert json.loads((folder / "judge.json").read_text())["provenance"]["prompt_hash"] == provenance["prompt_hash"]

    rows = read_tsv(folder / "judgments.tsv")
    qrels_lines = (folder / "qrels.augmented.txt").read_text().splitlines()
    from_qrels = {(line.split()[0], line.split()[2]): int(line.split()[3]) for line in qrels_lines}
    assert {("1", "31715818"): 1, ("3", "14717500"): 1}.items() <= from_qrels.items()  # human rows kept as they are
    llm_rows = {(r["qid"], r["docid"]): int(r["grade"]) for r in rows if r["source"] == "llm" and r["grade"] != ""}
    assert len(from_qrels) == 2 + len(llm_rows) and llm_rows.items() <= from_qrels.items()
    assert all(line.split()[1] == "0" and len(line.split()) == 4 for line in qrels_lines)
    agreement_report = report["agreement"]
    assert agreement_report["held_out_relevant"] == 2 and agreement_report["nonrelevant_kind"] == "assumed"
    assert set(report["measures"]) == {"bm25 (x)", "dense (y)"}
    assert report["measures"]["bm25 (x)"]["original"]["nDCG@10"] == pytest.approx(1.0)  # relevant doc first

    assert main([*map(str, dirs), *overrides]) == 0  # the command line, answered from the cache
    out = capsys.readouterr().out
    assert "calls 0, cached 8" in out and "| bm25 (x) |" in out
    again = json.loads((folder / "judge.json").read_text())
    assert again["counts"]["calls"] == 0 and again["counts"]["cached"] == 8
    assert (folder / "qrels.augmented.txt").read_text() == "\n".join(qrels_lines) + "\n"
    assert main([*map(str, dirs), *overrides, "estimate_only=true"]) == 0
    assert "0 calls (8 answers cached)" in capsys.readouterr().out
