"""The reproduction matrix: its file is checked key by key, a missed value or relation fails the run, a
model that is not fully trained is never evaluated, and the README's table is the committed last run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rankbench.harness.errors import ConfigError
from rankbench.harness.reproduce import (
    README_END,
    README_START,
    RESULTS,
    Condition,
    ReproductionError,
    load_matrix,
    main,
    ran_on,
    readme_table,
    train,
)
from tests.conftest import PROJECT, write_beir

TINY = """
conditions:
  tiny-bm25:
    title: BM25 on a tiny set
    overrides: [dataset=local, dataset.name=tiny, "dataset.path={data}"]
    expected:
      nDCG@10: {{value: {value}, tolerance: 0.0001}}
    source: worked out by hand
    tier: cheap
  tiny-deeper:
    title: BM25, 2 hits
    overrides: [dataset=local, dataset.name=tiny, "dataset.path={data}", retriever.hits=2]
    expected:
      nDCG@10: {{value: 0.5, tolerance: 1}}
    beats: [tiny-bm25]
    source: a relation that cannot hold
    tier: cheap
"""


def test_a_missed_value_or_relation_fails_the_run_and_the_last_run_is_kept(tmp_path: Path, capsys):
    data = write_beir(tmp_path / "tiny")
    matrix = tmp_path / "matrix.yaml"
    # BM25 ranks q1's and q3's relevant documents first and q2's second (below the "q2" document, which
    # also has both query words): nDCG@10 = (1 + 1/log2(3) + 1) / 3 = 0.87698.
    matrix.write_text(TINY.format(data=data, value=0.87698))
    runs = tmp_path / "runs"
    assert main(["tiny-bm25", "--matrix", str(matrix), "--runs", str(runs)]) == 0
    assert "| tiny-bm25 | nDCG@10 | 0.8770 ± 0.0001 | 0.8770 | ok |" in capsys.readouterr().out
    assert main(["--matrix", str(matrix), "--runs", str(runs)]) == 1  # 2 hits keep q2's at rank 2: no gain
    assert "| tiny-deeper | nDCG@10 | > tiny-bm25 (0.8770) | 0.8770 | FAILED |" in capsys.readouterr().out
    last = json.loads((runs / "reproduce" / "last.json").read_text())["conditions"]
    assert last["tiny-bm25"]["held"] is True and last["tiny-deeper"]["held"] is False
    assert last["tiny-bm25"]["machine"]["cpu"] and last["tiny-bm25"]["training"] is None
    matrix.write_text(TINY.format(data=data, value=0.5))
    assert main(["tiny-bm25", "--matrix", str(matrix), "--runs", str(runs)]) == 1  # the same run, kept, misses 0.5
    assert (runs / "reproduce" / "report.html").read_text().count("FAILED") == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("conditions: {}", "expected a non-empty mapping under 'conditions'"),
        ("conditions: {a: {title: t, expected: {}, source: s, tier: fast}}", "condition a: tier must be one of"),
        ("conditions: {a: {title: t, expected: {}, source: s, tier: cheap, typo: 1}}", r"unknown keys \['typo'\]"),
        ("conditions: {a: {title: t, source: s, tier: cheap}}", r"condition a: missing \['expected'\]"),
        ("conditions: {a: {title: t, expected: {R@100: 0.9}, source: s, tier: cheap}}", "expected.R@100 must be"),
        ("conditions: {a: {title: t, expected: {}, source: s, tier: cheap, beats: [b]}}", r"a.beats names unknown"),
    ],
)
def test_a_bad_matrix_names_the_file_the_condition_and_the_key(tmp_path: Path, text: str, message: str):
    path = tmp_path / "matrix.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as error:
        load_matrix(path)
    assert str(path) in str(error.value)


def test_a_model_whose_training_did_not_complete_is_never_evaluated(tmp_path: Path, monkeypatch):
    """``json.tool`` stands in for a trainer that stops without finishing (it refuses --recipe and exits)."""
    monkeypatch.chdir(tmp_path)  # the recipe's out folder is relative: nothing is trained here
    condition = Condition(
        "ce", "t", [], {}, "s", 1, "full", train={"recipe": "ce-minilm-scifact.yaml", "module": "json.tool"}
    )
    with pytest.raises(
        ReproductionError, match=r"ce: runs/models/ce-minilm-scifact/training.json does not record a complete"
    ):
        train(condition)
    record = tmp_path / "runs" / "models" / "ce-minilm-scifact" / "training.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"complete": False, "steps": 458, "total_steps": 752}))
    with pytest.raises(ReproductionError, match="rerun to resume it"):
        train(condition)
    sittings = [{"from_step": 0, "to_step": 400, "cpu_flags": ["avx2"]}, {"from_step": 400, "to_step": 752}]
    sittings[1]["cpu_flags"] = ["avx2", "avx512_bf16", "avx512f"]
    done = {"complete": True, "steps": 752, "total_steps": 752, "wall_s": 3780.0, "sessions": sittings}
    record.write_text(json.dumps(done | {"compute_dtype": "float32", "losses": [2.07]}))
    training = train(condition)  # complete: nothing to run, what the training took is reported
    assert training == {"recipe": "ce-minilm-scifact.yaml", "compute_dtype": "float32"} | {
        k: v for k, v in done.items() if k != "complete"
    }
    outcome = {"machine": {"cpu_flags": ["avx2"]}, "training": training}
    assert ran_on(outcome) == "avx2; trained 752 steps, 63 min, 2 sittings on avx2+avx512_bf16"
    assert ran_on({"measures": {}}) == "–"  # recorded before the machine was


def test_the_readme_table_is_the_committed_last_run():
    readme = (PROJECT / "README.md").read_text()
    block = readme.split(README_START, 1)[1].split(README_END, 1)[0]
    last = json.loads((PROJECT / RESULTS).read_text())
    assert block == "\n" + readme_table(load_matrix(), last)
    assert last["conditions"]["bm25-flat"]["held"] is True  # what the matrix's own tests re-check in make test
