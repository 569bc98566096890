"""``python -m harness.retrain``: the kill-and-resume loop and the comparison of two trainings."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rankbench.harness.errors import ConfigError
from rankbench.harness.retrain import compare, main, train_interrupted, trainer_class


def test_the_trainers_name_their_evaluations():
    assert trainer_class("rankbench.rerankers.train").evaluations == "dev"
    assert trainer_class("rankbench.retrievers.train_generative").evaluations == "evals"
    with pytest.raises(ConfigError, match="json: expected one"):
        trainer_class("json")


def test_a_killed_training_is_rerun_until_complete(tmp_path: Path):
    """A scripted stand-in for a trainer: its first run hangs (and is killed), its second completes."""
    record = tmp_path / "training.json"
    script = (
        "import json, pathlib, sys, time\n"
        f"runs = pathlib.Path({str(tmp_path / 'runs')!r})\n"
        "runs.write_text(runs.read_text() + 'x' if runs.exists() else 'x')\n"
        "if len(runs.read_text()) == 1: time.sleep(600)\n"
        f"pathlib.Path({str(record)!r}).write_text(json.dumps({{'complete': True}}))\n"
    )
    assert train_interrupted([sys.executable, "-c", script], 0.02, record) == 1
    assert (tmp_path / "runs").read_text() == "xx"  # killed once, resumed once
    assert train_interrupted([sys.executable, "-c", script], 5, record) == 0
    assert (tmp_path / "runs").read_text() == "xx"  # complete already: not run again


def test_two_trainings_agree_when_every_final_number_is_within_the_tolerance():
    first = {"dev": [{"step": 5, "ndcg": 0.5}, {"step": 10, "ndcg": 0.7000, "w": 0.3}], "losses": [2.0, 1.0]}
    second = {"dev": [{"step": 10, "ndcg": 0.7008, "w": 0.3}], "losses": [2.0, 1.25]}
    result = compare(first, second, "dev", 1e-3)
    assert result["held"] and result["max_difference"] == pytest.approx(0.0008)
    assert result["max_loss_difference"] == 0.25 and result["first"] == {"ndcg": 0.7, "step": 10, "w": 0.3}
    second["dev"][-1]["ndcg"] = 0.6980
    assert not compare(first, second, "dev", 1e-3)["held"]
    second["dev"][-1] |= {"ndcg": 0.7, "step": 9}  # an evaluation at another step is no match
    assert not compare(first, second, "dev", 1e-3)["held"]


def test_bad_conditions_are_refused_by_name(capsys):
    assert main(["no-such"]) == 2
    assert "unknown condition 'no-such'" in capsys.readouterr().err
    assert main(["bm25-flat"]) == 2
    assert "condition bm25-flat trains nothing" in capsys.readouterr().err
