"""LLM cost estimated before a listwise run (``estimate_only=true``) against what the run then spent.

    python benchmarks/llm_cost.py                         # BM25 top-20 -> SmolLM2-135M, 10 SciFact test queries
    python benchmarks/llm_cost.py --queries 1             # a smoke run
    python benchmarks/llm_cost.py --override llm@reranker.llm=openai reranker.llm.base_url=http://127.0.0.1:8080/v1

The estimate and the run use one config and an empty cache folder, so every call is made and the
calibration (harness/cost.py) is measured afresh, as on a machine that never estimated before.
Seconds on both sides exclude loading the weights. The report gives estimate / measured for
calls, prompt tokens, completion tokens and seconds, and whether each is within the ±25% target,
in ``<out>/llm_cost.md`` and ``<out>/llm_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere: import this checkout's packages
    sys.path.insert(0, str(REPO))

from benchmarks.common import add_path_options, environment, write_report  # noqa: E402
from rankbench.harness.config import compose  # noqa: E402
from rankbench.harness.estimate import estimate_run  # noqa: E402
from rankbench.harness.experiment import run_experiment  # noqa: E402

log = logging.getLogger("bench.llm_cost")

TOLERANCE = 0.25
QUANTITIES = ("calls", "prompt_tokens", "completion_tokens", "seconds")


def compare(args: argparse.Namespace, runs_dir: Path) -> dict:
    cfg = compose(
        [
            "reranker=listwise",
            f"reranker.depth={args.depth}",
            f"max_queries={args.queries}",
            f"data_root={args.data_root}",
            f"runs_dir={runs_dir}",
            f"cache_dir={runs_dir / 'cache'}",  # empty: no stage output, answer or calibration is reused
            *args.override,
        ]
    )
    (stage,) = [item for item in estimate_run(cfg) if item.slot == "reranker"]
    estimated = {q: getattr(stage.cost, q) for q in QUANTITIES}
    stats = json.loads((run_experiment(cfg).run_dir / "metrics.json").read_text())["reranker_stats"]
    spent = {
        "calls": stats["llm_calls"],
        "prompt_tokens": stats["prompt_tokens"],
        "completion_tokens": stats["completion_tokens"],
        "seconds": stats["llm_seconds"],
    }
    ratios = {q: estimated[q] / spent[q] if spent[q] else None for q in QUANTITIES}
    within = {q: r is not None and abs(r - 1) <= TOLERANCE for q, r in ratios.items()}
    return {"estimated": estimated, "measured": spent, "ratio": ratios, "within": within, "notes": stage.cost.notes}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--override", nargs="*", default=[], help="more Hydra overrides, e.g. llm@reranker.llm=openai")
    add_path_options(parser, "ignored: this benchmark starts from an empty cache in a temporary folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        result = compare(args, Path(tmp))
    report = {
        "pipeline": f"BM25 top-{args.depth} -> listwise (RankGPT sliding, window 20, stride 10)",
        "queries": args.queries,
        "overrides": args.override,
        "tolerance": TOLERANCE,
        **environment(),
        **result,
    }
    write_report(args.out, "llm_cost", render(report), report)
    return report


def render(report: dict) -> str:
    lines = [
        "# LLM cost: estimate before the run against the measured cost",
        "",
        f"{report['pipeline']}, first {report['queries']} SciFact test queries; overrides "
        f"{report['overrides'] or 'none'}; load average at the end "
        f"{', '.join(f'{v:.2f}' for v in report['load_average'])}.",
        "",
        f"| quantity | estimated | measured | estimated / measured | within ±{report['tolerance']:.0%} |",
        "|---|---:|---:|---:|---|",
    ]
    for q in QUANTITIES:
        ratio = report["ratio"][q]
        lines.append(
            f"| {q} | {report['estimated'][q] or 0:,.1f} | {report['measured'][q] or 0:,.1f} | "
            f"{'–' if ratio is None else f'{ratio:.2f}'} | {'yes' if report['within'][q] else 'no'} |"
        )
    lines += ["", *[f"- {note}" for note in report["notes"]]]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
