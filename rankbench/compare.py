"""``rankbench.experiment``: several systems on one dataset, as a pandas DataFrame.

Each system runs through the same code as ``evaluate.py`` (same configs, hashes and caches), so a
system evaluated before on the command line costs nothing here, and the reverse. Significance is
``python -m harness.leaderboard --baseline``'s: a paired t-test and a randomization test on the
per-query values, Holm-corrected over the systems compared with the baseline.
"""

from __future__ import annotations

import csv
import json
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from rankbench.harness import significance
from rankbench.harness.config import compose
from rankbench.harness.datasets import Dataset
from rankbench.harness.errors import ConfigError
from rankbench.harness.experiment import evaluate_pipeline, prepare, run_experiment
from rankbench.harness.pipeline import Pipeline
from rankbench.systems import Spec, System, as_system

SystemLike = System | Spec | str | Sequence[str]  # a pipeline, or command-line overrides
CORRECTIONS = ("holm", None)


def experiment(
    systems: Sequence[SystemLike],
    dataset: str,
    measures: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    baseline: int | str | None = None,
    correction: str | None = "holm",
    perquery: bool = False,
    record: bool = False,
    *,
    max_queries: int | None = None,
    runs_dir: str | Path = "runs",
    data_root: str | Path | None = None,
    overrides: Sequence[str] = (),
    permutations: int = 10000,
    seed: int = 0,
) -> pd.DataFrame:
    """Evaluate ``systems`` on ``dataset`` (a name in conf/dataset/) and compare them.

    Returns one row per system: the mean of each measure; with a ``baseline`` (an index into
    ``systems`` or a name) also, per measure, ``delta`` (system minus baseline), ``+`` and ``-`` (queries
    improved and degraded, as PyTerrier reports them), ``p_ttest``, ``p_rand`` and, with
    ``correction="holm"``, ``p_holm``. With ``perquery=True`` it returns the
    per-query values instead (columns name, qid, measure, value). ``record=True`` also writes each
    run folder and leaderboard row under ``runs_dir``, as ``evaluate.py`` would. ``measures``
    defaults to the dataset's; ``overrides`` apply to every system (``["dataset.path=/data/x"]``).
    """
    if correction not in CORRECTIONS:
        raise ConfigError(f"correction must be one of {CORRECTIONS}, got {correction!r}")
    settings = {"runs_dir": str(runs_dir), "max_queries": max_queries}
    settings |= {"measures": list(measures)} if measures else {}
    settings |= {"data_root": str(data_root)} if data_root is not None else {}
    configs = [_config(system, [f"dataset={dataset}", *overrides], settings) for system in systems]
    labels = _names(configs, names)
    means, values = _evaluate_all(configs, labels, record)
    if perquery:
        return _long(values)
    frame = pd.DataFrame(means).T
    frame.index.name = "name"
    if baseline is None:
        return frame
    return _with_tests(frame, values, _baseline(baseline, labels), correction, permutations, seed)


def _config(system: SystemLike, overrides: list[str], settings: dict[str, Any]) -> DictConfig:
    if isinstance(system, System | Spec):
        cfg = as_system(system).config(overrides)
    else:
        cfg = compose([*overrides, *(shlex.split(system) if isinstance(system, str) else system)])
    for key, value in settings.items():
        OmegaConf.update(cfg, key, value, merge=False)
    return cfg


def _names(configs: list[DictConfig], names: Sequence[str] | None) -> list[str]:
    labels = list(names) if names is not None else [Pipeline.from_config(cfg).name for cfg in configs]
    if len(labels) != len(configs):
        raise ConfigError(f"names has {len(labels)} entries for {len(configs)} systems")
    if len(set(labels)) != len(labels):
        raise ConfigError(f"systems need distinct names, got {labels}: pass names=[...]")
    return labels


Scores = dict[str, dict[str, float]]  # qid -> measure -> value


def _evaluate_all(
    configs: list[DictConfig], labels: list[str], record: bool
) -> tuple[dict[str, dict[str, float]], dict[str, Scores]]:
    """Per label, the measures' means and the per-query values; a dataset is loaded once for all systems
    that share it."""
    datasets: dict[str, Dataset] = {}
    means, values = {}, {}
    for label, cfg in zip(labels, configs, strict=True):
        if record:
            means[label], values[label] = _recorded(cfg)
            continue
        key = json.dumps(OmegaConf.to_container(cfg.dataset, resolve=True), sort_keys=True)
        dataset, queries, measures = prepare(cfg, datasets.get(key))
        datasets[key] = dataset
        scored = evaluate_pipeline(cfg, dataset, queries, measures)
        means[label], values[label] = scored.aggregate, scored.per_query
    return means, values


def _recorded(cfg: DictConfig) -> tuple[dict[str, float], Scores]:
    """Through evaluate.py's path: the run folder and row are written (or a complete one kept)."""
    outcome = run_experiment(cfg)
    with open(outcome.run_dir / "perquery.csv", newline="", encoding="utf-8") as f:
        per_query = {row.pop("qid"): {m: float(v) for m, v in row.items()} for row in csv.DictReader(f)}
    return outcome.metrics, per_query


def _long(values: dict[str, Scores]) -> pd.DataFrame:
    rows = [
        (label, qid, measure, value)
        for label, per_query in values.items()
        for qid, by_measure in per_query.items()
        for measure, value in by_measure.items()
    ]
    return pd.DataFrame(rows, columns=["name", "qid", "measure", "value"])


def _baseline(baseline: int | str, labels: list[str]) -> str:
    if isinstance(baseline, int):
        if not 0 <= baseline < len(labels):
            raise ConfigError(f"baseline={baseline} is not an index into the {len(labels)} systems")
        return labels[baseline]
    if baseline not in labels:
        raise ConfigError(f"baseline={baseline!r} is not among the systems' names {labels}")
    return baseline


def _with_tests(
    frame: pd.DataFrame,
    values: dict[str, Scores],
    base: str,
    correction: str | None,
    permutations: int,
    seed: int,
) -> pd.DataFrame:
    """Per measure: delta and p-values of every other system against ``base``; Holm within the measure."""
    others = [label for label in values if label != base]
    for measure in frame.columns.tolist():
        column = {label: {q: v[measure] for q, v in values[label].items()} for label in values}
        tests = {label: significance.compare(column[label], column[base], permutations, seed) for label in others}
        if correction == "holm":
            significance.correct(list(tests.values()))
        frame[f"{measure} delta"] = pd.Series({label: t.mean_delta for label, t in tests.items()})
        frame[f"{measure} +"] = pd.Series({label: int((t.deltas > 0).sum()) for label, t in tests.items()})
        frame[f"{measure} -"] = pd.Series({label: int((t.deltas < 0).sum()) for label, t in tests.items()})
        frame[f"{measure} p_ttest"] = pd.Series({label: t.p_ttest for label, t in tests.items()})
        frame[f"{measure} p_rand"] = pd.Series({label: t.p_randomization for label, t in tests.items()})
        if correction == "holm":
            frame[f"{measure} p_holm"] = pd.Series({label: t.p_adjusted for label, t in tests.items()})
    return frame
