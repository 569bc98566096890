"""Turning an Optuna sweep's best trial into the overrides that evaluate it on test (harness/tune.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hydra.utils import instantiate

from rankbench.harness.errors import RankbenchError
from rankbench.harness.tune import best_overrides


def results(tmp_path: Path, best_params: dict | None) -> Path:
    """An optimization_results.yaml as the Optuna sweeper writes it."""
    path = tmp_path / "optimization_results.yaml"
    path.write_text(yaml.safe_dump({"name": "optuna", "best_params": best_params, "best_value": 0.7}))
    return path


FUSION_BEST = {"retriever.method": "linear", "retriever.normalization": "zscore", "retriever.weights.dense": 0.812345}


def test_the_best_fusion_trial_becomes_overrides_that_build_that_hybrid(tmp_path: Path, make_cfg):
    overrides = best_overrides(results(tmp_path, FUSION_BEST))
    assert overrides == ["retriever.method=linear", "retriever.normalization=zscore", "retriever.weights.dense=0.8123"]
    cfg = make_cfg("retriever=hybrid", "retriever.name=hybrid_tuned", *overrides)
    hybrid = instantiate(cfg.retriever, _recursive_=False)
    assert (hybrid.method, hybrid.normalization) == ("linear", "zscore")
    assert hybrid.weights == {"bm25": 1.0, "dense": 0.8123}
    assert cfg.dataset.split == "test"  # nothing from the sweep moves the evaluation off test


def test_a_sweep_that_chose_the_dataset_is_refused(tmp_path: Path):
    with pytest.raises(RankbenchError, match=r"best_params sets \['dataset'\]; tune on one train split"):
        best_overrides(results(tmp_path, {"dataset": "scifact", **FUSION_BEST}))


def test_missing_or_empty_results_are_errors_naming_the_file(tmp_path: Path):
    with pytest.raises(RankbenchError, match=r"absent\.yaml: no such file; run the tuning sweep first"):
        best_overrides(tmp_path / "absent.yaml")
    with pytest.raises(RankbenchError, match=r"optimization_results\.yaml: no best_params"):
        best_overrides(results(tmp_path, None))
