"""LLM cost estimated before a run (``estimate_only=true``) against what the run then spent.

    python benchmarks/llm_cost.py                         # BM25 top-20 -> listwise SmolLM2-135M, 10 SciFact queries
    python benchmarks/llm_cost.py --task judge            # SmolLM2-135M judging BM25's top-10 holes, 10 queries
    python benchmarks/llm_cost.py --queries 1             # a smoke run
    python benchmarks/llm_cost.py --override llm@reranker.llm=openai reranker.llm.base_url=http://127.0.0.1:8080/v1
    python benchmarks/llm_cost.py --task judge --override llm=openai llm.base_url=http://127.0.0.1:8080/v1

The estimate and the run use one config and an empty cache folder, so every call is made and the
calibration (harness/cost.py) is measured afresh, as on a machine that never estimated before.
Seconds on both sides exclude loading the weights. ``--override`` goes to the listwise run's config
(conf/config.yaml) or to the judge's (conf/judge.yaml). The report gives estimate / measured for
calls, prompt tokens, completion tokens and seconds, and whether each is within the ±25% target,
in ``<out>/llm_cost[_judge].md`` and ``.json``.
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
from rankbench.harness import judge  # noqa: E402
from rankbench.harness.config import compose  # noqa: E402
from rankbench.harness.cost import Cost  # noqa: E402
from rankbench.harness.estimate import estimate_run  # noqa: E402
from rankbench.harness.experiment import run_experiment  # noqa: E402

log = logging.getLogger("bench.llm_cost")

TOLERANCE = 0.25
QUANTITIES = ("calls", "prompt_tokens", "completion_tokens", "seconds")


def compare_listwise(args: argparse.Namespace, runs_dir: Path) -> dict:
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
    stats = json.loads((run_experiment(cfg).run_dir / "metrics.json").read_text())["reranker_stats"]
    spent = {
        "calls": stats["llm_calls"],
        "prompt_tokens": stats["prompt_tokens"],
        "completion_tokens": stats["completion_tokens"],
        "seconds": stats["llm_seconds"],
    }
    return _outcome(stage.cost, spent)


def compare_judge(args: argparse.Namespace, runs_dir: Path) -> dict:
    """Judge BM25's top-``--depth`` holes of the first ``--queries`` queries (conf/judge.yaml otherwise)."""
    run_cfg = compose([f"max_queries={args.queries}", f"data_root={args.data_root}", f"runs_dir={runs_dir}",
                       f"cache_dir={runs_dir / 'cache'}"])  # fmt: skip
    run_dir = run_experiment(run_cfg).run_dir
    cfg = judge.compose_config(
        [f"depth={args.depth}", f"runs_dir={runs_dir}", f"data_root={args.data_root}", *args.override]
    )
    estimated = judge.estimate(cfg, [run_dir])
    _, report = judge.judge(cfg, [run_dir])
    return _outcome(estimated, {q: report["counts"][q] for q in QUANTITIES})


def _outcome(estimated: Cost, spent: dict) -> dict:
    guess = {q: getattr(estimated, q) for q in QUANTITIES}
    ratios = {q: guess[q] / spent[q] if spent[q] else None for q in QUANTITIES}
    within = {q: r is not None and abs(r - 1) <= TOLERANCE for q, r in ratios.items()}
    return {"estimated": guess, "measured": spent, "ratio": ratios, "within": within, "notes": estimated.notes}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=("listwise", "judge"), default="listwise")
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--depth", type=int, help="BM25 depth reranked (listwise, 20) or judged (judge, 10)")
    parser.add_argument("--override", nargs="*", default=[], help="more Hydra overrides, e.g. llm@reranker.llm=openai")
    add_path_options(parser, "ignored: this benchmark starts from an empty cache in a temporary folder")
    args = parser.parse_args(argv)
    args.depth = args.depth or (20 if args.task == "listwise" else 10)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        result = (compare_listwise if args.task == "listwise" else compare_judge)(args, Path(tmp))
    pipeline = {
        "listwise": f"BM25 top-{args.depth} -> listwise (RankGPT sliding, window 20, stride 10)",
        "judge": f"harness.judge on BM25's top-{args.depth} holes (UMBRELA prompt, conf/judge.yaml)",
    }
    report = {
        "task": args.task,
        "pipeline": pipeline[args.task],
        "queries": args.queries,
        "overrides": args.override,
        "tolerance": TOLERANCE,
        **environment(),
        **result,
    }
    write_report(args.out, "llm_cost" if args.task == "listwise" else "llm_cost_judge", render(report), report)
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
