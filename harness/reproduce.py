"""Run the reproduction matrix (conf/reproduce.yaml) and say which results hold.

    python -m harness.reproduce [NAMES ...] [--tier cheap] [--runs runs]

Each condition is evaluated as ``evaluate.py`` would (same configs, hashes and caches), so a rerun
skips every complete run and an interrupted one resumes. The table compares each measure with its
expected value and tolerance, and each ``beats`` relation; the exit status is 1 when any does not
hold. Each condition's latest result is kept in ``<runs>/reproduce/last.json`` (an HTML page beside
it). ``--readme README.md`` runs nothing: it copies that file to ``docs/results/reproduce.json``
(committed) and writes the README's results table from it, so the table is never typed by hand.
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from rankbench.harness.cache import write_text_atomic
from rankbench.harness.config import compose, conf_dir
from rankbench.harness.errors import ConfigError, RankbenchError
from rankbench.harness.experiment import run_experiment
from rankbench.harness.htmlpage import document, table
from rankbench.harness.leaderboard import to_markdown
from rankbench.harness.machine import cpu, cpu_kind
from rankbench.harness.signals import resumable

log = logging.getLogger(__name__)

TIERS = ("cheap", "full")
README_START, README_END = "<!-- reproduce:start -->", "<!-- reproduce:end -->"
RESULTS = Path("docs/results/reproduce.json")  # beside the README: the last run the README shows
TRAINING_FIELDS = ("steps", "total_steps", "compute_dtype", "wall_s", "sessions")  # from training.json


@dataclass(frozen=True)
class Condition:
    name: str
    title: str
    overrides: list[str]
    expected: dict[str, tuple[float, float]]  # measure -> (value, tolerance)
    source: str
    minutes: float
    tier: str
    beats: list[str] = field(default_factory=list)
    train: dict[str, str] | None = None  # {recipe: file in conf/train/, module: the trainer to run}


@dataclass
class Outcome:
    """One condition's run: its measures and, per check, whether it held."""

    name: str
    measures: dict[str, float]
    run_path: str
    checks: list[dict[str, Any]]
    machine: dict[str, Any] = field(default_factory=cpu)  # the CPU the condition was checked on
    training: dict[str, Any] | None = None  # for a trained model: steps, wall time and sittings

    @property
    def held(self) -> bool:
        return all(check["held"] for check in self.checks)


def load_matrix(path: Path | None = None) -> dict[str, Condition]:
    """The conditions of ``path`` (default conf/reproduce.yaml), checked key by key."""
    path = path or conf_dir() / "reproduce.yaml"
    raw = (OmegaConf.to_container(OmegaConf.load(path)) or {}).get("conditions")
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{path}: expected a non-empty mapping under 'conditions'")
    matrix = {name: _condition(path, name, spec) for name, spec in raw.items()}
    for condition in matrix.values():
        if unknown := [b for b in condition.beats if b not in matrix]:
            raise ConfigError(f"{path}: {condition.name}.beats names unknown conditions {unknown}")
    return matrix


def _condition(path: Path, name: str, spec: Any) -> Condition:
    where = f"{path}: condition {name}"
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping, got {spec!r}")
    known = {"title", "overrides", "expected", "beats", "source", "minutes", "tier", "train"}
    if unknown := sorted(set(spec) - known):
        raise ConfigError(f"{where}: unknown keys {unknown}; expected some of {sorted(known)}")
    if missing := sorted({"title", "expected", "source", "tier"} - set(spec)):
        raise ConfigError(f"{where}: missing {missing}")
    if spec["tier"] not in TIERS:
        raise ConfigError(f"{where}: tier must be one of {TIERS}, got {spec['tier']!r}")
    expected = {}
    for measure, target in (spec["expected"] or {}).items():
        if not isinstance(target, dict) or set(target) != {"value", "tolerance"}:
            raise ConfigError(f"{where}: expected.{measure} must be {{value: V, tolerance: T}}, got {target!r}")
        expected[str(measure)] = (float(target["value"]), float(target["tolerance"]))
    train = spec.get("train")
    if train is not None and (not isinstance(train, dict) or set(train) != {"recipe", "module"}):
        raise ConfigError(f"{where}: train must be {{recipe: <file in conf/train/>, module: <trainer>}}, got {train!r}")
    return Condition(
        name=name,
        title=str(spec["title"]),
        overrides=[str(o) for o in spec.get("overrides") or []],
        expected=expected,
        source=str(spec["source"]),
        minutes=float(spec.get("minutes", 0)),
        tier=spec["tier"],
        beats=[str(b) for b in spec.get("beats") or []],
        train=train,
    )


def select(matrix: dict[str, Condition], names: list[str], tier: str | None) -> list[Condition]:
    """The named conditions (all when none), those a ``beats`` needs first, narrowed to a tier."""
    if unknown := [n for n in names if n not in matrix]:
        raise ConfigError(f"unknown conditions {unknown}; the matrix has {sorted(matrix)}")
    chosen = [c for c in matrix.values() if (not names or c.name in names) and (tier is None or c.tier == tier)]
    needed = {b for c in chosen for b in c.beats} - {c.name for c in chosen}
    return [c for c in matrix.values() if c.name in needed] + chosen


class ReproductionError(RankbenchError):
    """A condition cannot be evaluated as the matrix defines it (e.g. its model is not fully trained)."""


def train(condition: Condition) -> dict[str, Any] | None:
    """Run the condition's recipe to completion (the trainer resumes a paused run), refusing otherwise;
    returns what ``training.json`` says of the work: steps, dtype, wall time and each sitting's CPU."""
    if condition.train is None:
        return None
    recipe, out = recipe_paths(condition.train)
    path = out / "training.json"
    if not complete(path):
        log.info("%s: training %s (resumable: rerun to continue)", condition.name, recipe)
        subprocess.run([sys.executable, "-m", condition.train["module"], "--recipe", str(recipe)], check=False)
    if not complete(path):
        raise ReproductionError(
            f"{condition.name}: {path} does not record a complete training of {recipe}; rerun to resume it"
        )
    record = json.loads(path.read_text())
    return {"recipe": condition.train["recipe"]} | {k: record.get(k) for k in TRAINING_FIELDS}


def recipe_paths(train: dict[str, str]) -> tuple[Path, Path]:
    """A condition's ``train:`` as (the recipe file, the model folder it writes)."""
    recipe = conf_dir() / "train" / train["recipe"]
    return recipe, Path(str(OmegaConf.load(recipe).out))


def complete(record: Path) -> bool:
    """Whether ``record`` (a ``training.json``) says its training finished."""
    return record.is_file() and json.loads(record.read_text()).get("complete") is True


def run_condition(condition: Condition, runs: Path, data_root: str | None) -> Outcome:
    """The condition's measures, through evaluate.py's path (a complete run is kept, not redone);
    checks are added by ``reproduce``."""
    training = train(condition)
    settings = [f"runs_dir={runs}", *([f"data_root={data_root}"] if data_root else [])]
    outcome = run_experiment(compose([*settings, *condition.overrides]))
    run_path = str(outcome.run_dir.relative_to(runs.parent))  # no machine's paths in docs/
    return Outcome(condition.name, dict(outcome.metrics), run_path, [], training=training)


def check(condition: Condition, measures: dict[str, float], done: dict[str, Outcome]) -> list[dict[str, Any]]:
    """Each expected value within its tolerance, and each ``beats`` relation, as rows for the table."""
    checks = []
    for measure, (value, tolerance) in condition.expected.items():
        got = measures.get(measure)
        held = got is not None and abs(got - value) <= tolerance
        checks.append({"measure": measure, "expected": value, "tolerance": tolerance, "got": got, "held": held})
        for other in condition.beats:
            theirs = done[other].measures.get(measure)
            held = got is not None and theirs is not None and got > theirs
            checks.append({"measure": measure, "beats": other, "theirs": theirs, "got": got, "held": held})
    return checks


def reproduce(conditions: list[Condition], runs: Path, data_root: str | None) -> list[Outcome]:
    """Each condition in turn; its outcome is recorded as soon as it is known, so a stopped
    reproduction loses nothing (and its runs are complete runs, skipped by the next one)."""
    done: dict[str, Outcome] = {}
    for condition in conditions:
        log.info("reproducing %s: %s", condition.name, condition.title)
        outcome = run_condition(condition, runs, data_root)
        outcome.checks = check(condition, outcome.measures, done)
        done[condition.name] = outcome
        record(outcome, runs / "reproduce" / "last.json")
    return list(done.values())


def check_rows(matrix: dict[str, Condition], outcomes: list[Outcome]) -> list[list[str]]:
    """Header and rows: one row per check."""
    rows = [["condition", "measure", "expected", "got", "status", "source"]]
    for outcome in outcomes:
        for c in outcome.checks:
            got = "missing" if c["got"] is None else f"{c['got']:.4f}"
            if "beats" in c:
                theirs = "missing" if c["theirs"] is None else f"{c['theirs']:.4f}"
                expected = f"> {c['beats']} ({theirs})"
            else:
                expected = f"{c['expected']:.4f} ± {c['tolerance']:g}"
            status = "ok" if c["held"] else "FAILED"
            rows.append([outcome.name, c["measure"], expected, got, status, matrix[outcome.name].source])
    return rows


def html_page(rows: list[list[str]], when: str) -> str:
    """The table as a page, in the leaderboard report's style."""
    settings = f"<p class='settings'>generated {html.escape(when)} from conf/reproduce.yaml</p>"
    return document(
        "rankbench reproduction", ["<h1>rankbench reproduction matrix</h1>", settings, table(rows[0], rows[1:])]
    )


def record(outcome: Outcome, path: Path) -> None:
    """The condition's latest outcome into ``last.json``, atomically; other conditions' are kept, so
    running some conditions never drops the others."""
    latest = json.loads(path.read_text())["conditions"] if path.is_file() else {}
    when = datetime.now(UTC).isoformat(timespec="seconds")
    latest[outcome.name] = asdict(outcome) | {"held": outcome.held, "when": when}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps({"conditions": latest}, indent=1, sort_keys=True) + "\n")


def readme_table(matrix: dict[str, Condition], last: dict[str, Any]) -> str:
    """The README's results table: every condition of the matrix, with its latest result in ``last``
    (a ``last.json``), or "not run" when the matrix has not run it yet."""
    rows = [["system", "nDCG@10", "R@100", "expected nDCG@10", "status", "ran on", "source", "command"]]
    for condition in matrix.values():
        outcome = last["conditions"].get(condition.name, {"measures": {}})
        measures = outcome["measures"]
        expected = condition.expected.get("nDCG@10")
        status = "not run" if "held" not in outcome else "reproduced" if outcome["held"] else "FAILED"
        rows.append(
            [
                condition.title,
                *(f"{measures[m]:.4f}" if m in measures else "–" for m in ("nDCG@10", "R@100")),
                f"{expected[0]:.4f} ± {expected[1]:g}" if expected else "–",
                status,
                ran_on(outcome),
                condition.source,
                f"`{command(condition)}`",
            ]
        )
    return to_markdown(rows[0], rows[1:])


def ran_on(outcome: dict[str, Any]) -> str:
    """The CPU kind the condition was checked on and, for a trained model, the work and its sittings:
    ``avx2; trained 752 steps, 63 min, 2 sittings on avx2``."""
    if "machine" not in outcome:
        return "–"
    where = cpu_kind(outcome["machine"]["cpu_flags"])
    if not (training := outcome.get("training")):
        return where
    sittings = training.get("sessions") or []
    kinds = sorted({cpu_kind(s["cpu_flags"]) for s in sittings})
    trained = f"trained {training['steps']} steps, {training['wall_s'] / 60:.0f} min"
    if sittings:
        trained += f", {len(sittings)} sitting{'s' if len(sittings) > 1 else ''} on {'+'.join(kinds)}"
    return f"{where}; {trained}"


def command(condition: Condition) -> str:
    """What a reader types: evaluate.py's overrides, or the matrix itself when a model is trained first."""
    if condition.train is not None:
        return f"python -m harness.reproduce {condition.name}"
    return " ".join(["python evaluate.py", *condition.overrides])


def write_readme(readme: Path, block: str) -> bool:
    """Replace what lies between the README's markers; True when the file changed."""
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        raise ConfigError(f"{readme}: no {README_START} ... {README_END} block to write the results into")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    updated = f"{head}{README_START}\n{block}{README_END}{tail}"
    if updated != text:
        write_text_atomic(readme, updated)
    return updated != text


def publish(matrix: dict[str, Condition], last_path: Path, readme: Path) -> int:
    """``docs/results/reproduce.json`` from the last run, and the README's table from that copy."""
    last = json.loads(last_path.read_text())
    committed = readme.parent / RESULTS
    committed.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(committed, json.dumps(last, indent=1, sort_keys=True) + "\n")
    changed = write_readme(readme, readme_table(matrix, last))
    print(f"{readme}: {'updated' if changed else 'unchanged'} from {committed}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness.reproduce", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="conditions to run (default: all)")
    parser.add_argument("--tier", choices=TIERS, help="only conditions of this tier")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="runs folder (caches are reused)")
    parser.add_argument("--data-root", help="offline data root (default: RANKBENCH_DATA_ROOT)")
    parser.add_argument("--matrix", type=Path, help="the matrix file (default: conf/reproduce.yaml)")
    parser.add_argument("--readme", type=Path, help="write this README's results block from the last run, run nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    folder = args.runs.absolute() / "reproduce"
    try:
        matrix = load_matrix(args.matrix)
        if args.readme:
            return publish(matrix, folder / "last.json", args.readme)
        with resumable(f"finished runs are kept in {args.runs}"):
            outcomes = reproduce(select(matrix, args.names, args.tier), args.runs.absolute(), args.data_root)
    except (RankbenchError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows = check_rows(matrix, outcomes)
    print(to_markdown(rows[0], rows[1:]), end="")
    write_text_atomic(folder / "report.html", html_page(rows, datetime.now(UTC).isoformat(timespec="seconds")))
    print(f"results: {folder / 'last.json'}, {folder / 'report.html'}", file=sys.stderr)
    return 0 if all(o.held for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
