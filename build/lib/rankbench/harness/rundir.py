"""The folder of one run, written whole: run.trec, metrics.json, perquery.csv, config.yaml."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

from rankbench.harness import cache
from rankbench.harness.runfile import write_trec_run
from rankbench.harness.types import Run


def write_run_dir(
    run_dir: Path,
    run: Run,
    metrics: dict[str, Any],
    per_query: dict[str, dict[str, float]],
    config_yaml: str,
    tag: str,
) -> None:
    """Fill a temporary sibling, then swap it in: readers see the old folder or the new one."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    cache.remove_stale_temps(run_dir.parent)
    tmp = cache.temp_path(run_dir)
    tmp.mkdir()
    try:
        write_trec_run(run, tmp / "run.trec", tag=tag)
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        names = list(metrics["measures"])
        with open(tmp / "perquery.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["qid", *names])
            for qid, values in per_query.items():
                writer.writerow([qid, *(repr(values[m]) for m in names)])  # exact: tests read them back
        (tmp / "config.yaml").write_text(config_yaml)
        cache.replace_dir(tmp, run_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
