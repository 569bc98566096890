"""What every benchmark script shares: where the data, caches and reports live, and how a report lands.

A report is a Markdown table for people and a JSON file for tools, both written atomically so
that an interrupted benchmark never leaves half a report beside the previous good one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
from typing import Any

from harness.cache import write_text_atomic

REPO = Path(__file__).resolve().parent.parent


def add_path_options(parser: argparse.ArgumentParser, cache_help: str = "index and model cache") -> None:
    """``--data-root`` (holds beir/scifact.zip), ``--cache-dir`` and ``--out`` with the project's defaults."""
    parser.add_argument(
        "--data-root",
        default=os.environ.get("RANKBENCH_DATA_ROOT") or str(REPO.parent / "shared" / "data"),
        help="holds beir/scifact.zip",
    )
    parser.add_argument("--cache-dir", type=Path, default=REPO / "runs" / "cache", help=cache_help)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results", help="report folder")


def environment(**versions: str) -> dict[str, Any]:
    """Where the numbers come from: cores, platform, versions, and the load at the end (others' work slows us)."""
    machine = {"cpu_count": os.cpu_count(), "platform": platform.platform(), **versions}
    return {"machine": machine, "load_average": os.getloadavg()}


def write_report(out: Path, name: str, markdown: str, report: dict[str, Any]) -> None:
    """``<out>/<name>.md`` and ``<out>/<name>.json``."""
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / f"{name}.md", markdown.rstrip("\n") + "\n")
    write_text_atomic(out / f"{name}.json", json.dumps(report, indent=2) + "\n")
