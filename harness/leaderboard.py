"""runs/leaderboard.csv: one row per completed run, safe for concurrent writers; and its reader.

Appends hold a file lock. When a row brings a column the file lacks (a new measure), the
file is rewritten atomically with the union of columns, earlier rows left blank there.

``python -m harness.leaderboard`` prints the latest row per config as a table, optionally
tests systems against one or more baselines (or all pairs) on the saved per-query values, with
bootstrap intervals (``rankbench.harness.significance``), and writes an HTML report
(``rankbench.harness.report``).
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ir_measures
import numpy as np
from filelock import FileLock

from rankbench.harness import aggregate, configdiff, holes, significance
from rankbench.harness.cache import write_text_atomic
from rankbench.harness.errors import RankbenchError

# per reranking slot (harness/pipeline.py); _model_complete: "false" for a model whose training stopped early
STAGE_COLUMNS = ["", "_depth", "_model", "_model_hash", "_model_complete", "_interpolate"]
LEADING = ["timestamp", "dataset", "retriever", "retriever_model_complete"]
LEADING += [slot + column for slot in ("reranker", "reranker2", "reranker3") for column in STAGE_COLUMNS]
LEADING += ["system", "system_hash", "external"]  # system_hash: the system across datasets (harness/aggregate.py);
# external: "true" for a run imported from a TREC file (harness/external.py)
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


Row = dict[str, str]


@dataclass
class Tested:
    """One line of the comparison table: ``system`` against ``baseline`` (rows of one dataset) on ``measure``."""

    system: Row
    baseline: Row
    measure: str
    comparison: significance.Comparison


def read_values(runs_dir: Path, rows: list[Row], measures: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """config_hash -> measure -> qid -> value, from each row's perquery.csv (rows of one dataset)."""
    return {
        row["config_hash"]: {m: significance.read_perquery(perquery_path(runs_dir, row), m) for m in measures}
        for row in rows
    }


def compare_rows(
    rows: list[Row],
    runs_dir: Path,
    baselines: list[str],
    all_pairs: bool,
    measures: list[str],
    options: significance.Options,
) -> list[Tested]:
    """Every system against each baseline (or all pairs), per dataset and measure; one correction
    family per dataset and measure. With all pairs, each run is tested against every run that
    ranks below it in ``rows`` (sorted best first), so deltas read as gains."""
    found = {name: find_baselines(rows, name) for name in baselines}
    tested: list[Tested] = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        here = [r for r in rows if r["dataset"] == dataset]
        by_hash = {r["config_hash"]: r for r in here}
        bases = [found[name][dataset]["config_hash"] for name in baselines if dataset in found[name]]
        if all_pairs:
            wanted = significance.pairs([r["config_hash"] for r in reversed(here)], all_pairs=True)
        else:
            wanted = significance.pairs(list(by_hash), bases)
        if not wanted:
            continue
        involved = [by_hash[h] for h in dict.fromkeys(h for pair in wanted for h in pair)]
        values = read_values(runs_dir, involved, measures)
        results = significance.compare_all(values, wanted, measures, options)
        tested += [Tested(by_hash[s], by_hash[b], m, c) for (s, b, m), c in results.items()]
    return tested


def system_intervals(
    rows: list[Row], runs_dir: Path, measures: list[str], resamples: int, seed: int
) -> dict[tuple[str, str, str], tuple[float, float]]:
    """(dataset, config_hash, measure) -> bootstrap interval of the run's mean."""
    intervals = {}
    for row in rows:
        for measure in measures:
            per_query = significance.read_perquery(perquery_path(runs_dir, row), measure)
            values = np.array(list(per_query.values()), dtype=float)
            intervals[(row["dataset"], row["config_hash"], measure)] = significance.bootstrap_ci(
                values, resamples, seed
            )
    return intervals


def _p(p: float) -> str:
    """Four decimals, or scientific notation where that would print 0.0000."""
    return "n/a" if math.isnan(p) else f"{p:.4f}" if p >= 1e-4 else f"{p:.1e}"


def _value(v: float, sign: bool = False) -> str:
    return "n/a" if math.isnan(v) else f"{v:+.4f}" if sign else f"{v:.4f}"


def table(
    rows: list[Row],
    measures: list[str],
    intervals: dict[tuple[str, str, str], tuple[float, float]] | None = None,
    ci_measures: list[str] = (),
) -> tuple[list[str], list[list[str]]]:
    """Header and display strings of the runs; a bootstrap interval per ``ci_measures`` when given."""
    header = ["dataset", "system", "config_hash", "queries", *measures]
    header += [f"{m} {end}" for m in ci_measures for end in ("ci_low", "ci_high")]
    header += ["ms/query", "total_s", "git_commit"]
    body = []
    for row in rows:
        ms = latency_ms(row)
        cells = [row["dataset"], row["system"], row["config_hash"], row["num_queries"]]
        cells += [f"{float(row[m]):.4f}" if row.get(m) else "" for m in measures]
        for m in ci_measures:
            cells += [_value(v) for v in (intervals or {})[(row["dataset"], row["config_hash"], m)]]
        cells += ["" if ms is None else f"{ms:.3g}", row.get("total_s", ""), row.get("git_commit", "")]
        body.append(cells)
    return header, body


def comparison_table(tested: list[Tested], correction: str, ci: bool) -> tuple[list[str], list[list[str]]]:
    """One line per system × baseline × measure; ``sig`` marks adjusted p < ALPHA (raw p_rand with no correction)."""
    header = ["dataset", "system", "config_hash", "baseline", "baseline_hash", "measure", "paired", "delta"]
    header += ["ci_low", "ci_high"] if ci else []
    header += ["p_ttest", "p_rand"] + ([f"p_{correction}"] if correction != "none" else []) + ["sig"]
    body = []
    for t in tested:
        c = t.comparison
        cells = [t.system["dataset"], t.system["system"], t.system["config_hash"]]
        cells += [t.baseline["system"], t.baseline["config_hash"], t.measure, str(c.paired), _value(c.mean_delta, True)]
        cells += [_value(c.ci_low, True), _value(c.ci_high, True)] if ci else []
        cells += [_p(c.p_ttest), _p(c.p_randomization)] + ([_p(c.p_adjusted)] if correction != "none" else [])
        body.append([*cells, "*" if c.significant else ""])
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


_LATEX_SPECIAL = {c: "\\" + c for c in "&%$#_{}"} | {
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
    "†": r"$^\dagger$",  # the aggregate's mark for a dataset not every system ran
    "–": "--",
}


def _latex_cell(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


def to_latex(header: list[str], body: list[list[str]]) -> str:
    """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``), text columns left, the rest right."""
    align = "".join("l" if any(_is_text(line[i]) for line in body) or not body else "r" for i in range(len(header)))
    lines = [f"\\begin{{tabular}}{{{align}}}", "\\toprule", " & ".join(map(_latex_cell, header)) + r" \\", "\\midrule"]
    lines += [" & ".join(map(_latex_cell, cells)) + r" \\" for cells in body]
    return "\n".join([*lines, "\\bottomrule", "\\end{tabular}"]) + "\n"


def _is_text(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return cell not in ("", "n/a", "–")  # –: the aggregate's missing value
    return False


FORMATS = {"markdown": to_markdown, "csv": to_csv, "latex": to_latex}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness.leaderboard",
        description=__doc__.split("\n")[0],
        epilog="python -m harness.leaderboard import RUN.trec --dataset NAME --name NAME adds a TREC run file "
        "(see its --help).",
    )
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="runs folder holding leaderboard.csv")
    parser.add_argument("--dataset", help="only this dataset")
    parser.add_argument("--sort", help="measure to sort by, descending (default nDCG@10 when present)")
    parser.add_argument("--format", choices=list(FORMATS), default="markdown")
    _statistics_options(parser)
    parser.add_argument("--report", type=Path, help="also write a self-contained HTML report here")
    parser.add_argument(
        "--aggregate", action="store_true", help="each system's --measure per dataset and its mean (BEIR-style)"
    )
    return parser


def _statistics_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--baseline", action="append", default=[], help="system name or config hash to test others against; repeatable"
    )
    parser.add_argument("--all-pairs", action="store_true", help="test every pair of runs on each dataset")
    parser.add_argument(
        "--measure", action="append", default=[], help="measure for tests and intervals (default: the sort measure)"
    )
    corrections = [*significance.CORRECTIONS, "none"]
    parser.add_argument("--correction", choices=corrections, default="holm", help="multiple-testing correction")
    parser.add_argument("--ci", action="store_true", help="95%% BCa bootstrap intervals per run and per delta")
    parser.add_argument("--resamples", type=int, default=significance.RESAMPLES, help="bootstrap resamples")
    parser.add_argument("--permutations", type=int, default=10000, help="randomization test permutations")
    parser.add_argument("--seed", type=int, default=0, help="randomization test and bootstrap seed")


def _choose(wanted: str | None, available: list[str], option: str) -> str:
    if wanted is None:
        return "nDCG@10" if "nDCG@10" in available else available[0]
    if wanted not in available:
        raise LeaderboardError(f"unknown measure {wanted!r} for {option}; available: {', '.join(available)}")
    return wanted


def _check_statistics(args: argparse.Namespace) -> None:
    if args.permutations < 1:
        raise LeaderboardError(f"--permutations must be at least 1, got {args.permutations}")
    if args.resamples < 1:
        raise LeaderboardError(f"--resamples must be at least 1, got {args.resamples}")
    if args.all_pairs and args.baseline:
        raise LeaderboardError("--all-pairs tests every pair already: pass it or --baseline, not both")


@dataclass
class Statistics:
    """What the options asked for beyond the plain table."""

    measures: list[str]
    tested: list[Tested]
    intervals: dict[tuple[str, str, str], tuple[float, float]]


def statistics(args: argparse.Namespace, rows: list[Row], measures: list[str], sort: str) -> Statistics:
    """Intervals per run and tests between runs, for the --measure list (default: the sort measure)."""
    chosen = list(dict.fromkeys(_choose(m, measures, "--measure") for m in args.measure or [sort]))
    for name in args.baseline:
        missing = sorted({r["dataset"] for r in rows} - find_baselines(rows, name).keys())
        for dataset in missing:
            print(f"warning: baseline {name!r} has no run on {dataset}; no tests against it there", file=sys.stderr)
    tested = []
    if args.baseline or args.all_pairs:
        options = significance.Options(
            args.correction, args.permutations, args.seed, args.resamples if args.ci else None
        )
        tested = compare_rows(rows, args.runs, args.baseline, args.all_pairs, chosen, options)
    intervals = system_intervals(rows, args.runs, chosen, args.resamples, args.seed) if args.ci else {}
    return Statistics(chosen, tested, intervals)


def run(args: argparse.Namespace) -> str:
    """The table as text (and the comparisons after a blank line); writes the report when asked.
    Raises RankbenchError on bad input."""
    _check_statistics(args)
    path = args.runs / "leaderboard.csv"
    if not path.is_file():
        raise LeaderboardError(f"no leaderboard at {path} (run evaluate.py first, or pass --runs)")
    rows = latest(read_rows(path))
    if args.aggregate and args.dataset is not None:
        raise LeaderboardError("--aggregate compares datasets: drop --dataset")
    if args.dataset is not None:
        datasets = sorted({r["dataset"] for r in rows})
        rows = [r for r in rows if r["dataset"] == args.dataset]
        if not rows:
            raise LeaderboardError(f"no runs of dataset {args.dataset!r} in {path}; datasets: {', '.join(datasets)}")
    measures = measures_of(rows)
    if not measures:
        raise LeaderboardError(f"{path} has no runs with measure values")
    sort = _choose(args.sort, measures, "--sort")
    rows = sort_rows(rows, sort)
    stats = statistics(args, rows, measures, sort)
    if args.aggregate:
        return aggregate_text(args, rows, stats.measures[0])
    header, body = table(rows, measures, stats.intervals, stats.measures if args.ci else [])
    found = differs(rows, args.runs)
    header, body = with_differs(header, body, rows, found)
    text = FORMATS[args.format](header, body)
    compared = comparison_table(stats.tested, args.correction, args.ci) if stats.tested else None
    if compared is not None:
        text += "\n" + FORMATS[args.format](*compared)
    if args.report is not None:
        _write_report(args, (header, body), compared, rows, sort, stats, found)
    return text


def _labels(rows: list[dict[str, str]], found: dict[int, str]) -> dict[int, str]:
    """Plot label per row: the system name, with what sets it apart (``differs``, else a hash prefix)
    where a dataset has it twice."""
    seen: dict[tuple[str, str], int] = {}
    for row in rows:
        seen[(row["dataset"], row["system"])] = seen.get((row["dataset"], row["system"]), 0) + 1
    return {
        id(r): r["system"]
        + (f" ({found.get(id(r)) or r['config_hash'][:6]})" if seen[(r["dataset"], r["system"])] > 1 else "")
        for r in rows
    }


def _write_report(
    args: argparse.Namespace,
    runs_table: tuple[list[str], list[list[str]]],
    compared: tuple[list[str], list[list[str]]] | None,
    rows: list[Row],
    sort: str,
    stats: Statistics,
    found: dict[int, str],
) -> None:
    from rankbench.harness import report  # matplotlib loads only when a report is asked for

    label = _labels(rows, found)
    points = [report.Point(r["dataset"], label[id(r)], latency_ms(r), _float(r.get(sort))) for r in rows]
    pairs = [
        report.Pair(t.system["dataset"], label[id(t.system)], label[id(t.baseline)], t.measure, t.comparison)
        for t in stats.tested
    ]
    settings = {"runs": str(args.runs), "dataset": args.dataset or "all", "sort": sort}
    if stats.tested or args.ci:
        settings["measures"] = ", ".join(stats.measures)
    if stats.tested:
        settings["baselines"] = "all pairs" if args.all_pairs else ", ".join(args.baseline)
        settings |= {"correction": args.correction, "permutations": str(args.permutations)}
    if args.ci:
        settings["bootstrap resamples"] = str(args.resamples)
    if stats.tested or args.ci:
        settings["seed"] = str(args.seed)
    sections = report_sections(rows, args.runs, stats.measures[0], label)
    report.write(args.report, report.page(runs_table, compared, sort, points, pairs, settings, args.ci, sections))


# --- config differences, aggregates over datasets, holes (harness/configdiff.py, aggregate.py, holes.py) ---


def run_config(runs_dir: Path, row: dict[str, str]) -> dict[str, Any] | None:
    """The resolved config its run folder saved (None for a run without one)."""
    return configdiff.load_config(perquery_path(runs_dir, row).parent / "config.yaml")


def differs(rows: list[dict[str, str]], runs_dir: Path) -> dict[int, str]:
    """id(row) -> the config keys, with its values, that set it apart from the runs of its dataset sharing
    its system name (``retriever.remove_query=false``); only rows that share a name are read."""
    groups: dict[tuple[str, str], list[dict[str, str]]] = {}
    for row in rows:
        groups.setdefault((row["dataset"], row["system"]), []).append(row)
    found: dict[int, str] = {}
    for group in groups.values():
        if len(group) > 1:
            configs = {id(r): config for r in group if (config := run_config(runs_dir, r)) is not None}
            found |= {key: ", ".join(keys) for key, keys in configdiff.differences(configs).items()}
    return found


def with_differs(
    header: list[str], body: list[list[str]], rows: list[dict[str, str]], found: dict[int, str]
) -> tuple[list[str], list[list[str]]]:
    """A ``differs`` column after the config hash, only when some rows share a name on a dataset."""
    if not any(found.values()):
        return header, body
    at = header.index("config_hash") + 1
    cells = [[*line[:at], found.get(id(row), ""), *line[at:]] for line, row in zip(body, rows, strict=True)]
    return [*header[:at], "differs", *header[at:]], cells


STAGES = ("retriever", "reranker", "reranker2", "reranker3")


def system_labels(rows: list[dict[str, str]], runs_dir: Path) -> dict[str, str]:
    """System key -> name, and where systems share a name, the stage settings that differ (compared on one
    dataset they all ran where there is one, since a stage may take a value from its dataset)."""
    by_name: dict[str, dict[str, list[dict[str, str]]]] = {}
    for row in rows:
        by_name.setdefault(row["system"], {}).setdefault(aggregate.system_key(row), []).append(row)
    labels = {}
    for name, systems in by_name.items():
        if len(systems) == 1:
            labels |= dict.fromkeys(systems, name)
            continue
        common = set.intersection(*({r["dataset"] for r in runs} for runs in systems.values()))
        configs = {}
        for key, runs in systems.items():
            row = min(runs, key=lambda r: (r["dataset"] not in common, r["dataset"]))
            if (config := run_config(runs_dir, row)) is not None:
                configs[key] = {stage: config[stage] for stage in STAGES if stage in config}
        diffs = configdiff.differences(configs)
        labels |= {key: f"{name} ({', '.join(diffs.get(key, [])) or key[:6]})" for key in systems}
    return labels


def aggregate_text(args: argparse.Namespace, rows: list[dict[str, str]], measure: str) -> str:
    """``--aggregate``: the BEIR-style table of ``measure`` in ``--format``, its notes beneath (on stderr
    for csv, whose readers are scripts)."""
    result = aggregate.aggregate(rows, measure, system_labels(rows, args.runs))
    header, body = aggregate.table(result)
    notes = aggregate.footnotes(result)
    if args.format == "csv":
        print("\n".join(notes), file=sys.stderr)
        return to_csv(header, body)
    comment = "% " if args.format == "latex" else ""
    return FORMATS[args.format](header, body) + "".join(f"\n{comment}{note}" for note in notes) + "\n"


def report_sections(rows: list[dict[str, str]], runs_dir: Path, measure: str, label: dict[int, str]) -> list[str]:
    """The report's aggregate (when the rows span datasets) and holes sections."""
    from rankbench.harness import report

    sections = []
    if len({r["dataset"] for r in rows}) > 1:
        result = aggregate.aggregate(rows, measure, system_labels(rows, runs_dir))
        title = f"Mean {measure} over datasets"
        sections.append(report.section(title, *aggregate.table(result), aggregate.footnotes(result)))
    header, body = holes.holes(rows, label)
    if body:
        sections.append(report.section("Holes: unjudged documents in the top 10", header, body, [holes.NOTE]))
    return sections


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["import"]:
        from rankbench.harness import external  # loads the dataset and config machinery only when importing

        return external.main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        sys.stdout.write(run(args))
    except RankbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
