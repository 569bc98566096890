"""A BEIR-style table: one column per dataset, plus each system's mean over the shared datasets.

A mean over different sets of datasets compares nothing (a system that skipped the hard collection
would look better), so the mean of every system is taken over the datasets that all compared
systems have run; a dataset some system lacks still gets its column, is left out of every mean,
and is named in a note. Runs are matched across datasets by ``system_hash`` (harness/experiment.py:
the stage configs without the dataset); rows written before that column existed fall back to the
system name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rankbench.harness.errors import RankbenchError


class AggregateError(RankbenchError):
    """The rows cannot give the aggregate asked for (no rows, or no values of the measure)."""


@dataclass
class System:
    """One system's row of the table: its value on each dataset it has, and its mean over the shared ones."""

    key: str  # system_hash, or the system name for rows without one
    label: str
    values: dict[str, float] = field(default_factory=dict)
    mean: float | None = None


@dataclass
class Aggregate:
    measure: str
    datasets: list[str]  # every dataset some system has: the table's columns
    shared: list[str]  # the datasets every system has: the ones averaged
    systems: list[System]  # by mean, best first
    notes: list[str]


def system_key(row: dict[str, str]) -> str:
    return row.get("system_hash") or row["system"]


def aggregate(rows: list[dict[str, str]], measure: str, labels: dict[str, str] | None = None) -> Aggregate:
    """``rows``: one per run (the latest per config hash); ``labels``: system key -> display name, for
    systems that share a name (default: the name, with the key where two systems share it)."""
    if not rows:
        raise AggregateError("no leaderboard rows to aggregate")
    systems, notes = _collect(rows, measure, labels or _default_labels(rows))
    if not systems:
        raise AggregateError(f"no run has a value for {measure!r}")
    datasets = sorted({d for s in systems for d in s.values})
    shared = [d for d in datasets if all(d in s.values for s in systems)]
    for s in systems:
        s.mean = sum(s.values[d] for d in shared) / len(shared) if shared else None
        if lacking := [d for d in datasets if d not in s.values]:
            notes.append(f"{s.label} has no {measure} on {', '.join(lacking)}: those datasets are not averaged")
    if not shared:
        notes.append(f"no dataset has a {measure} for every system: no mean is given")
    systems.sort(key=lambda s: (s.mean is None, -(s.mean or 0.0), s.label))
    return Aggregate(measure, datasets, shared, systems, notes)


def _collect(rows: list[dict[str, str]], measure: str, labels: dict[str, str]) -> tuple[list[System], list[str]]:
    """Each system's value per dataset; where one system ran a dataset twice (other measures or
    max_queries, so another config hash), the latest row counts and a note says so."""
    systems: dict[str, System] = {}
    chosen: dict[tuple[str, str], dict[str, str]] = {}
    notes = []
    for row in sorted(rows, key=lambda r: r.get("timestamp") or ""):
        value = row.get(measure)
        if value in (None, ""):
            continue
        key = system_key(row)
        system = systems.setdefault(key, System(key, labels.get(key, row["system"])))
        if (earlier := chosen.get((key, row["dataset"]))) is not None:
            notes.append(
                f"{system.label} on {row['dataset']}: the latest run ({row['config_hash']}) counts, "
                f"not {earlier['config_hash']}"
            )
        chosen[(key, row["dataset"])] = row
        system.values[row["dataset"]] = float(value)
    return list(systems.values()), notes


def _default_labels(rows: list[dict[str, str]]) -> dict[str, str]:
    """The system name, with the first 6 characters of its key where two keys share the name."""
    keys_of: dict[str, set[str]] = {}
    for row in rows:
        keys_of.setdefault(row["system"], set()).add(system_key(row))
    labels = {}
    for name, keys in keys_of.items():
        for key in keys:
            labels[key] = name if len(keys) == 1 else f"{name} ({key[:6]})"
    return labels


def table(result: Aggregate) -> tuple[list[str], list[list[str]]]:
    """Header and cells: system, one column per dataset (``–`` where the system lacks it), the mean."""
    averaged = len(result.shared)
    mean = f"mean ({averaged} dataset{'s' if averaged != 1 else ''})"
    header = ["system", *(d if d in result.shared else f"{d}†" for d in result.datasets), mean]
    body = []
    for s in result.systems:
        cells = [s.label, *(f"{s.values[d]:.4f}" if d in s.values else "–" for d in result.datasets)]
        cells.append("" if s.mean is None or math.isnan(s.mean) else f"{s.mean:.4f}")
        body.append(cells)
    return header, body


def footnotes(result: Aggregate) -> list[str]:
    """What the table's reader needs: the measure, what was averaged, and every exclusion."""
    lines = [f"{result.measure}; the mean is over {', '.join(result.shared) or 'no dataset'}."]
    if len(result.shared) < len(result.datasets):
        lines.append("† not run by every system, so left out of every mean.")
    return lines + result.notes
