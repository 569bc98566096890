"""``rankbench.experiment``: several systems on one dataset, as a pandas DataFrame; ``rankbench.aggregate``:
their mean over several datasets.

Each system runs through the same code as ``evaluate.py`` (same configs, hashes and caches), so a
system evaluated before on the command line costs nothing here, and the reverse. Significance is
``python -m harness.leaderboard --baseline``'s: a paired t-test and a randomization test on the
per-query values against one or more baselines (or all pairs), corrected over every comparison on
a measure (Holm, Bonferroni or Benjamini–Hochberg), with optional BCa bootstrap intervals.
"""

from __future__ import annotations

import csv
import json
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
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
BaselineLike = int | str  # an index into the systems, or a name
CORRECTIONS = (*significance.CORRECTIONS, "none", None)


def experiment(
    systems: Sequence[SystemLike],
    dataset: str,
    measures: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    baseline: BaselineLike | Sequence[BaselineLike] | None = None,
    correction: str | None = "holm",
    perquery: bool = False,
    record: bool = False,
    *,
    all_pairs: bool = False,
    ci: bool = False,
    resamples: int = significance.RESAMPLES,
    max_queries: int | None = None,
    runs_dir: str | Path = "runs",
    data_root: str | Path | None = None,
    overrides: Sequence[str] = (),
    permutations: int = 10000,
    seed: int = 0,
) -> pd.DataFrame:
    """Evaluate ``systems`` on ``dataset`` (a name in conf/dataset/) and compare them.

    Returns one row per system: the mean of each measure; with ``ci=True`` also its 95% BCa
    bootstrap interval (``<measure> ci_low``, ``ci_high``; ``resamples`` resamples, ``seed``).
    With a ``baseline`` (an index into ``systems`` or a name, or a list of them), or
    ``all_pairs=True`` (each system against every earlier one), also, per measure and compared pair,
    ``delta`` (system minus baseline), ``+`` and ``-`` (queries improved and degraded, as PyTerrier
    reports them), ``p_ttest``, ``p_rand``, with a ``correction`` (``"holm"``, ``"bonferroni"``,
    ``"bh"``; None or ``"none"`` for none) ``p_<correction>``, and with ``ci=True`` ``delta ci_low``
    and ``delta ci_high``. The correction's family is every comparison on one measure. With one
    baseline the columns read ``nDCG@10 delta``; with several, or all pairs, each names its
    baseline: ``nDCG@10 delta vs bm25``. With ``perquery=True`` it returns the
    per-query values instead (columns name, qid, measure, value). ``record=True`` also writes each
    run folder and leaderboard row under ``runs_dir``, as ``evaluate.py`` would. ``measures``
    defaults to the dataset's; ``overrides`` apply to every system (``["dataset.path=/data/x"]``).
    """
    if correction not in CORRECTIONS:
        raise ConfigError(f"correction must be one of {CORRECTIONS}, got {correction!r}")
    if all_pairs and baseline is not None:
        raise ConfigError("all_pairs=True compares every pair already: pass it or baseline, not both")
    if resamples < 1:
        raise ConfigError(f"resamples must be at least 1, got {resamples}")
    settings = {"runs_dir": str(runs_dir), "max_queries": max_queries}
    settings |= {"measures": list(measures)} if measures else {}
    settings |= {"data_root": str(data_root)} if data_root is not None else {}
    configs = [_config(system, [f"dataset={dataset}", *overrides], settings) for system in systems]
    labels = _names(configs, names)
    tested = _pairs(baseline, all_pairs, labels)
    means, values = _evaluate_all(configs, labels, record)
    if perquery:
        return _long(values)
    frame = pd.DataFrame(means).T
    frame.index.name = "name"
    options = significance.Options(correction or "none", permutations, seed, resamples if ci else None)
    if ci:
        frame = _with_intervals(frame, values, options)
    if not tested:
        return frame
    return _with_tests(frame, values, tested, options, suffix=all_pairs or len({b for _, b in tested}) > 1)


def aggregate(
    systems: Sequence[SystemLike],
    datasets: Sequence[str],
    measure: str = "nDCG@10",
    names: Sequence[str] | None = None,
    record: bool = False,
    *,
    max_queries: int | None = None,
    runs_dir: str | Path = "runs",
    data_root: str | Path | None = None,
    overrides: Sequence[str] = (),
) -> pd.DataFrame:
    """Each system's ``measure`` on each of ``datasets`` (names in conf/dataset/) and its mean over them:
    the API's ``python -m harness.leaderboard --aggregate``, as a DataFrame (one column per dataset,
    then ``mean``; best mean first).

    Every system runs on every dataset here (through :func:`experiment`, so cached runs cost nothing),
    so the mean is over all of ``datasets``; the leaderboard's version, which reads runs made at
    different times, averages only the datasets every system has. ``measure`` must be one of each
    dataset's measures (conf/dataset/<name>.yaml) or be added with ``overrides=["measures=[...]"]``.
    """
    if not datasets or isinstance(datasets, str):
        raise ConfigError(f"datasets must be a list of dataset names, got {datasets!r}")
    settings = {"names": names, "correction": None, "record": record, "max_queries": max_queries}
    settings |= {"runs_dir": runs_dir, "data_root": data_root, "overrides": overrides}
    columns = {}
    for dataset in datasets:
        frame = experiment(systems, dataset, **settings)
        if measure not in frame.columns:
            raise ConfigError(
                f"measure {measure!r} is not measured on dataset {dataset} (its measures: {frame.columns.tolist()}); "
                "add it with overrides=['measures=[...]']"
            )
        columns[dataset] = frame[measure]
    table = pd.DataFrame(columns)
    table["mean"] = table.mean(axis=1)
    table.index.name = "name"
    return table.sort_values("mean", ascending=False, kind="stable")


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


def _baseline(baseline: BaselineLike, labels: list[str]) -> str:
    if isinstance(baseline, int):
        if not 0 <= baseline < len(labels):
            raise ConfigError(f"baseline={baseline} is not an index into the {len(labels)} systems")
        return labels[baseline]
    if baseline not in labels:
        raise ConfigError(f"baseline={baseline!r} is not among the systems' names {labels}")
    return baseline


def _pairs(
    baseline: BaselineLike | Sequence[BaselineLike] | None, all_pairs: bool, labels: list[str]
) -> list[tuple[str, str]]:
    """(system, baseline) names to test, checked before anything runs."""
    if all_pairs:
        return significance.pairs(labels, all_pairs=True)
    if baseline is None:
        return []
    several = baseline if isinstance(baseline, Sequence) and not isinstance(baseline, str) else [baseline]
    return significance.pairs(labels, [_baseline(b, labels) for b in several])


def _by_measure(values: dict[str, Scores], measures: list[str]) -> significance.Values:
    """label -> measure -> qid -> value: the layout significance.compare_all reads."""
    return {
        label: {m: {q: v[m] for q, v in per_query.items()} for m in measures} for label, per_query in values.items()
    }


def _with_intervals(frame: pd.DataFrame, values: dict[str, Scores], options: significance.Options) -> pd.DataFrame:
    """Per measure, the bootstrap interval of each system's mean."""
    by_measure = _by_measure(values, frame.columns.tolist())
    for measure in frame.columns.tolist():
        intervals = {
            label: significance.bootstrap_ci(np.array(list(v[measure].values())), options.resamples, options.seed)
            for label, v in by_measure.items()
        }
        frame[f"{measure} ci_low"] = pd.Series({label: low for label, (low, _) in intervals.items()})
        frame[f"{measure} ci_high"] = pd.Series({label: high for label, (_, high) in intervals.items()})
    return frame


def _with_tests(
    frame: pd.DataFrame,
    values: dict[str, Scores],
    tested: list[tuple[str, str]],
    options: significance.Options,
    suffix: bool,
) -> pd.DataFrame:
    """Per measure and baseline: delta and p-values of each tested system; one correction family per measure.
    ``suffix`` names the baseline in each column (needed once a system is compared with more than one)."""
    measures = [m for m in frame.columns.tolist() if not m.endswith(("ci_low", "ci_high"))]
    results = significance.compare_all(_by_measure(values, measures), tested, measures, options)
    stats: dict[str, Callable[[significance.Comparison], float]] = {
        "delta": lambda t: t.mean_delta,
        "+": lambda t: int((t.deltas > 0).sum()),
        "-": lambda t: int((t.deltas < 0).sum()),
        "p_ttest": lambda t: t.p_ttest,
        "p_rand": lambda t: t.p_randomization,
    }
    if options.correction != "none":
        stats[f"p_{options.correction}"] = lambda t: t.p_adjusted
    if options.resamples is not None:
        stats |= {"delta ci_low": lambda t: t.ci_low, "delta ci_high": lambda t: t.ci_high}
    columns: dict[str, dict[str, float]] = {}
    for measure in measures:
        for base in dict.fromkeys(b for _, b in tested):
            for name, stat in stats.items():
                column = f"{measure} {name}" + (f" vs {base}" if suffix else "")
                columns[column] = {s: stat(results[(s, b, measure)]) for s, b in tested if b == base}
    joined = pd.concat([frame, pd.DataFrame(columns)], axis=1).reindex(frame.index)
    joined.index.name = frame.index.name
    return joined
