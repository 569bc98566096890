"""Train a matrix condition's recipe a second time, killed part way and resumed, and compare the models.

    python -m harness.retrain ce-minilm [--after 30] [--out runs/models/ce-minilm-scifact-retrain]

A recipe is work, not wall time, and a checkpoint carries every RNG state, so a training that is killed
and resumed must give the model an uninterrupted one gives. This runs the condition's trainer into a
second folder, kills it (SIGKILL, as a lost session would) ``--after`` minutes in, reruns the same
command until ``training.json`` says complete, and compares the result with the first model (the
recipe's own folder, which must be complete): the final evaluation's every number within
``--tolerance`` (dev nDCG@10 for the cross-encoder), the losses and the weights' digest. The comparison
is written to ``<runs>/reproduce/retrain-<condition>.json``; the exit status is 1 when it does not hold.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

from rankbench.harness.cache import write_text_atomic
from rankbench.harness.errors import ConfigError, RankbenchError
from rankbench.harness.models import weights_digest
from rankbench.harness.reproduce import ReproductionError, complete, load_matrix, recipe_paths
from rankbench.harness.training import PAUSED, Trainer

log = logging.getLogger(__name__)


def trainer_class(module: str) -> type[Trainer]:
    """The module's Trainer subclass: it names the list of evaluations ``training.json`` keeps."""
    found = [c for c in vars(importlib.import_module(module)).values() if _is_trainer(c) and c.module == module]
    if len(found) != 1:
        raise ConfigError(f"{module}: expected one rankbench.harness.training.Trainer subclass, found {len(found)}")
    return found[0]


def _is_trainer(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, Trainer) and obj is not Trainer


def train_interrupted(command: list[str], after_minutes: float, record: Path) -> int:
    """Run ``command``, kill it after ``after_minutes``, then rerun it until ``record`` says complete;
    returns how many times it was killed (0 when it finished first, or was complete already: a rerun of
    this command after a lost session only finishes the work)."""
    kills = 0
    if complete(record):
        return kills
    try:
        subprocess.run(command, timeout=after_minutes * 60, check=False)
    except subprocess.TimeoutExpired:
        kills += 1  # subprocess.run has sent SIGKILL: no handler ran, as when a session is lost
        log.info("killed the training after %g minutes; rerunning it to resume", after_minutes)
    while not complete(record):
        code = subprocess.run(command, check=False).returncode
        if code not in (0, PAUSED):
            raise ReproductionError(f"{' '.join(command)} exited with status {code}")
    return kills


def compare(first: dict[str, Any], second: dict[str, Any], evaluations: str, tolerance: float) -> dict[str, Any]:
    """The final evaluation's numbers side by side, their largest difference, and whether it is within
    ``tolerance``; also the largest per-step loss difference."""
    a, b = first[evaluations][-1], second[evaluations][-1]
    numbers = sorted(k for k, v in a.items() if isinstance(v, int | float) and not isinstance(v, bool) and k in b)
    differences = {k: abs(a[k] - b[k]) for k in numbers if k != "step"}
    losses = [abs(x - y) for x, y in zip(first["losses"], second["losses"], strict=True)]
    return {
        "first": {k: a[k] for k in numbers},
        "second": {k: b[k] for k in numbers},
        "max_difference": max(differences.values(), default=0.0),
        "max_loss_difference": max(losses, default=0.0),
        "tolerance": tolerance,
        "held": a.get("step") == b.get("step") and all(d <= tolerance for d in differences.values()),
    }


def retrain(name: str, after: float | None, out: Path | None, tolerance: float, runs: Path) -> dict[str, Any]:
    matrix = load_matrix()
    if name not in matrix:
        raise ConfigError(f"unknown condition {name!r}; the matrix has {sorted(matrix)}")
    condition = matrix[name]
    if condition.train is None:
        raise ConfigError(f"condition {name} trains nothing (no train: in conf/reproduce.yaml)")
    recipe, first_dir = recipe_paths(condition.train)
    if not complete(first_dir / "training.json"):
        raise ReproductionError(f"{first_dir} is not a complete training: run python -m harness.reproduce {name}")
    first = json.loads((first_dir / "training.json").read_text())
    second_dir = out or first_dir.with_name(first_dir.name + "-retrain")
    after = after if after is not None else first["wall_s"] / 120  # half the first training's time
    module = condition.train["module"]
    command = [sys.executable, "-m", module, "--recipe", str(recipe), "--out", str(second_dir)]
    kills = train_interrupted(command, after, second_dir / "training.json")
    second = json.loads((second_dir / "training.json").read_text())
    result = compare(first, second, trainer_class(module).evaluations, tolerance)
    result |= {
        "condition": name,
        "recipe": condition.train["recipe"],
        "kills": kills,
        "killed_after_minutes": after,
        "sessions": {"first": first.get("sessions"), "second": second.get("sessions")},
        "same_weights": weights_digest(first_dir) == weights_digest(second_dir),
        "models": [str(first_dir), str(second_dir)],
    }
    path = runs / "reproduce" / f"retrain-{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(result, indent=1) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.retrain", description=__doc__.split("\n")[0])
    parser.add_argument("name", help="a condition of conf/reproduce.yaml with a train: recipe")
    parser.add_argument("--after", type=float, help="minutes before the kill (default: half the first training's)")
    parser.add_argument("--out", type=Path, help="the second model's folder (default: <recipe out>-retrain)")
    parser.add_argument("--tolerance", type=float, default=1e-3, help="on each number of the final evaluation")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="the comparison goes to <runs>/reproduce/")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    try:
        result = retrain(args.name, args.after, args.out, args.tolerance, args.runs)
    except RankbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in result.items() if k != "sessions"}, indent=1))
    return 0 if result["held"] else 1


if __name__ == "__main__":
    sys.exit(main())
