"""runs/leaderboard.csv: one row per completed run, safe for concurrent writers; and its reader.

Appends hold a file lock. When a row brings a column the file lacks (a new measure), the
file is rewritten atomically with the union of columns, earlier rows left blank there.

``python -m harness.leaderboard`` prints the latest row per config as a table, optionally
tests every system against a baseline on the saved per-query values (``rankbench.harness.significance``)
and writes an HTML report (``rankbench.harness.report``).
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from pathlib import Path
from typing import Any

import ir_measures
from filelock import FileLock

from rankbench.harness import significance
from rankbench.harness.cache import write_text_atomic
from rankbench.harness.errors import RankbenchError

# per reranking slot (harness/pipeline.py); _model_complete: "false" for a model whose training stopped early
STAGE_COLUMNS = ["", "_depth", "_model", "_model_hash", "_model_complete", "_interpolate"]
LEADING = ["timestamp", "dataset", "retriever", "retriever_model_complete"]
LEADING += [slot + column for slot in ("reranker", "reranker2", "reranker3") for column in STAGE_COLUMNS]
LEADING += ["system"]
LEADING += ["config_hash", "git_commit"]
LEADING += ["max_queries", "num_queries"]
TRAILING = ["index_s", "retrieve_s", "rerank_s", "total_s", "peak_rss_mb", "run_path"]


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _columns(existing: list[str], row: dict[str, Any]) -> list[str]:
    measures = [c for c in [*existing, *row] if c not in LEADING and c not in TRAILING]
    return LEADING + list(dict.fromkeys(measures)) + TRAILING


def append(path: Path, row: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        header: list[str] = []
        if path.is_file():
            with open(path, newline="", encoding="utf-8") as f:
                header = next(csv.reader(f), [])
        columns = _columns(header, row)
        if columns == header:
            with open(path, "a", newline="", encoding="utf-8") as f:
                csv.DictWriter(f, columns).writerow(row)
            return
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, columns)
        writer.writeheader()
        writer.writerows([*read_rows(path), row])
        write_text_atomic(path, buffer.getvalue())


# --- reading: python -m harness.leaderboard ------------------------------------------------


class LeaderboardError(RankbenchError):
    """The leaderboard, a run folder or an option does not hold what was asked for."""


def latest(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """One row per (dataset, config_hash): the latest, since a rerun (overwrite=true) appends again."""
    newest: dict[tuple[str, str], tuple[str, int]] = {}
    for i, row in enumerate(rows):
        key = (row["dataset"], row["config_hash"])
        newest[key] = max(newest.get(key, ("", -1)), (row.get("timestamp") or "", i))
    return [rows[i] for _, i in sorted(newest.values(), key=lambda v: v[1])]


def measures_of(rows: list[dict[str, str]]) -> list[str]:
    """Measure columns with a value in at least one of ``rows``, in file order; not the columns that
    describe a stage (``retriever_index``) or count its work (``rerank_pairs_scored``)."""
    columns = [c for c in (rows[0] if rows else {}) if c not in LEADING and c not in TRAILING and _is_measure(c)]
    return [c for c in columns if any(row.get(c) for row in rows)]


def _is_measure(column: str) -> bool:
    try:
        ir_measures.parse_measure(column)
    except (ValueError, NameError, SyntaxError, TypeError):
        return False
    return True


def _float(value: str | None) -> float | None:
    return float(value) if value not in (None, "") else None


def latency_ms(row: dict[str, str]) -> float | None:
    """Query-time cost per query (retrieve + rerank, indexing excluded), in milliseconds."""
    queries, retrieve, rerank = (_float(row.get(c)) for c in ("num_queries", "retrieve_s", "rerank_s"))
    if not queries or retrieve is None:
        return None
    return 1000 * (retrieve + (rerank or 0.0)) / queries


def sort_rows(rows: list[dict[str, str]], measure: str) -> list[dict[str, str]]:
    """By dataset, then ``measure`` descending; rows without a value for it go last."""

    def key(row: dict[str, str]) -> tuple[str, bool, float]:
        value = _float(row.get(measure))
        return row["dataset"], value is None, -(value or 0.0)

    return sorted(rows, key=key)


def find_baselines(rows: list[dict[str, str]], baseline: str) -> dict[str, dict[str, str]]:
    """dataset -> the one row named by ``baseline`` (a system name or a config hash) there."""
    matches: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        if baseline in (row["system"], row["config_hash"]):
            matches.setdefault(row["dataset"], []).append(row)
    if not matches:
        systems = sorted({f"{r['system']} ({r['config_hash']})" for r in rows})
        raise LeaderboardError(f"unknown baseline {baseline!r}; systems (config hash) are: {', '.join(systems)}")
    for dataset, found in matches.items():
        if len(found) > 1:
            hashes = ", ".join(r["config_hash"] for r in found)
            raise LeaderboardError(
                f"baseline {baseline!r} names {len(found)} runs on {dataset} (config hashes {hashes}); pass one hash"
            )
    return {dataset: found[0] for dataset, found in matches.items()}


def perquery_path(runs_dir: Path, row: dict[str, str]) -> Path:
    """The run's perquery.csv: where the layout puts it under ``runs_dir``, else at its recorded run_path."""
    canonical = runs_dir / row["dataset"] / row["system"] / row["config_hash"] / "perquery.csv"
    recorded = Path(row.get("run_path") or canonical.parent) / "perquery.csv"
    if canonical.is_file() or not recorded.is_file():
        return canonical
    return recorded


def compare_to_baselines(
    rows: list[dict[str, str]],
    baselines: dict[str, dict[str, str]],
    runs_dir: Path,
    measure: str,
    permutations: int,
    seed: int,
) -> dict[tuple[str, str], significance.Comparison]:
    """(dataset, config_hash) -> comparison with that dataset's baseline; Holm within each dataset."""
    comparisons: dict[tuple[str, str], significance.Comparison] = {}
    for dataset, base in baselines.items():
        base_values = significance.read_perquery(perquery_path(runs_dir, base), measure)
        family = {}
        for row in rows:
            if row["dataset"] == dataset and row is not base:
                values = significance.read_perquery(perquery_path(runs_dir, row), measure)
                family[(dataset, row["config_hash"])] = significance.compare(values, base_values, permutations, seed)
        significance.correct(list(family.values()))
        comparisons.update(family)
    return comparisons


def _p(p: float) -> str:
    """Four decimals, or scientific notation where that would print 0.0000."""
    return "n/a" if math.isnan(p) else f"{p:.4f}" if p >= 1e-4 else f"{p:.1e}"


def table(
    rows: list[dict[str, str]],
    measures: list[str],
    baselines: dict[str, dict[str, str]] | None = None,
    comparisons: dict[tuple[str, str], significance.Comparison] | None = None,
    measure: str = "",
) -> tuple[list[str], list[list[str]]]:
    """Header and display strings; significance columns only when a baseline was given."""
    header = ["dataset", "system", "config_hash", "queries", *measures, "ms/query", "total_s", "git_commit"]
    if baselines is not None:
        header += ["paired", f"mean_delta({measure})", "p_ttest", "p_rand", "p_holm", "sig"]
    body = []
    for row in rows:
        ms = latency_ms(row)
        cells = [row["dataset"], row["system"], row["config_hash"], row["num_queries"]]
        cells += [f"{float(row[m]):.4f}" if row.get(m) else "" for m in measures]
        cells += ["" if ms is None else f"{ms:.3g}", row.get("total_s", ""), row.get("git_commit", "")]
        if baselines is not None:
            found = (comparisons or {}).get((row["dataset"], row["config_hash"]))
            if found is not None:
                delta = "n/a" if math.isnan(found.mean_delta) else f"{found.mean_delta:+.4f}"
                cells += [str(found.paired), delta, _p(found.p_ttest), _p(found.p_randomization), _p(found.p_adjusted)]
                cells.append("*" if found.significant else "")
            else:
                is_base = baselines.get(row["dataset"]) is row
                cells += [""] * 5 + ["baseline" if is_base else ""]
        body.append(cells)
    return header, body


def to_markdown(header: list[str], body: list[list[str]]) -> str:
    """A GitHub-style table; ``|`` in a cell (e.g. a measure name) is escaped."""
    lines = [header, ["---"] * len(header), *body]
    return "".join("| " + " | ".join(c.replace("|", "\\|") for c in line) + " |\n" for line in lines)


def to_csv(header: list[str], body: list[list[str]]) -> str:
    """The same cells as the markdown table, for spreadsheets and scripts."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows([header, *body])
    return buffer.getvalue()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness.leaderboard", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="runs folder holding leaderboard.csv")
    parser.add_argument("--dataset", help="only this dataset")
    parser.add_argument("--sort", help="measure to sort by, descending (default nDCG@10 when present)")
    parser.add_argument("--format", choices=["markdown", "csv"], default="markdown")
    parser.add_argument("--baseline", help="system name or config hash to test every other system against")
    parser.add_argument("--measure", help="measure for significance (default: the sort measure)")
    parser.add_argument("--permutations", type=int, default=10000, help="randomization test permutations")
    parser.add_argument("--seed", type=int, default=0, help="randomization test seed")
    parser.add_argument("--report", type=Path, help="also write a self-contained HTML report here")
    return parser


def _choose(wanted: str | None, available: list[str], option: str) -> str:
    if wanted is None:
        return "nDCG@10" if "nDCG@10" in available else available[0]
    if wanted not in available:
        raise LeaderboardError(f"unknown measure {wanted!r} for {option}; available: {', '.join(available)}")
    return wanted


def run(args: argparse.Namespace) -> str:
    """The table as text; writes the report when asked. Raises RankbenchError on bad input."""
    if args.permutations < 1:
        raise LeaderboardError(f"--permutations must be at least 1, got {args.permutations}")
    path = args.runs / "leaderboard.csv"
    if not path.is_file():
        raise LeaderboardError(f"no leaderboard at {path} (run evaluate.py first, or pass --runs)")
    rows = latest(read_rows(path))
    if args.dataset is not None:
        datasets = sorted({r["dataset"] for r in rows})
        rows = [r for r in rows if r["dataset"] == args.dataset]
        if not rows:
            raise LeaderboardError(f"no runs of dataset {args.dataset!r} in {path}; datasets: {', '.join(datasets)}")
    measures = measures_of(rows)
    if not measures:
        raise LeaderboardError(f"{path} has no runs with measure values")
    sort = _choose(args.sort, measures, "--sort")
    measure = _choose(args.measure or sort, measures, "--measure")
    rows = sort_rows(rows, sort)
    baselines = comparisons = None
    if args.baseline is not None:
        baselines = find_baselines(rows, args.baseline)
        for dataset in sorted({r["dataset"] for r in rows} - baselines.keys()):
            print(f"warning: baseline {args.baseline!r} has no run on {dataset}; no tests there", file=sys.stderr)
        comparisons = compare_to_baselines(rows, baselines, args.runs, measure, args.permutations, args.seed)
    header, body = table(rows, measures, baselines, comparisons, measure)
    if args.report is not None:
        _write_report(args, header, body, rows, sort, measure, baselines or {}, comparisons or {})
    return to_markdown(header, body) if args.format == "markdown" else to_csv(header, body)


def _labels(rows: list[dict[str, str]]) -> dict[int, str]:
    """Plot label per row: the system name, with a hash prefix where a dataset has it twice."""
    seen: dict[tuple[str, str], int] = {}
    for row in rows:
        seen[(row["dataset"], row["system"])] = seen.get((row["dataset"], row["system"]), 0) + 1
    return {
        id(r): r["system"] + (f" ({r['config_hash'][:6]})" if seen[(r["dataset"], r["system"])] > 1 else "")
        for r in rows
    }


def _write_report(
    args: argparse.Namespace,
    header: list[str],
    body: list[list[str]],
    rows: list[dict[str, str]],
    sort: str,
    measure: str,
    baselines: dict[str, dict[str, str]],
    comparisons: dict[tuple[str, str], significance.Comparison],
) -> None:
    from rankbench.harness import report  # matplotlib loads only when a report is asked for

    label = _labels(rows)
    points = [report.Point(r["dataset"], label[id(r)], latency_ms(r), _float(r.get(sort))) for r in rows]
    pairs = [
        report.Pair(r["dataset"], label[id(r)], label[id(baselines[r["dataset"]])], found)
        for r in rows
        if (found := comparisons.get((r["dataset"], r["config_hash"]))) is not None
    ]
    settings = {"runs": str(args.runs), "dataset": args.dataset or "all", "sort": sort}
    if args.baseline is not None:
        settings |= {"baseline": args.baseline, "measure": measure, "permutations": str(args.permutations)}
        settings["seed"] = str(args.seed)
    report.write(args.report, report.page(header, body, sort, measure, points, pairs, settings))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        sys.stdout.write(run(args))
    except RankbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
