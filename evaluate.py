"""Evaluate one retrieval pipeline (or a sweep with -m) and record it on the leaderboard.

python evaluate.py                                   # BM25 on SciFact
python evaluate.py retriever=bm25_multifield max_queries=50
python evaluate.py -m retriever=bm25,bm25_multifield # a sweep; complete runs are skipped
python evaluate.py experiment=bm25_grid              # a named grid from conf/experiment/
python evaluate.py reranker=cross_encoder reranker.model=M reranker.depth=100 \
    reranker@reranker2=listwise reranker2.depth=20   # a cascade (docs/pipelines.md)
python evaluate.py reranker=listwise estimate_only=true  # LLM calls, tokens, seconds: nothing run
"""

from __future__ import annotations

import json
import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from rankbench.harness import cost
from rankbench.harness.errors import ConfigError, RankbenchError
from rankbench.harness.estimate import estimate_run, render
from rankbench.harness.experiment import Outcome, run_experiment
from rankbench.harness.extras import missing_extra
from rankbench.harness.signals import resumable

log = logging.getLogger("rankbench")

TUNABLE_SPLITS = {"train", "dev", "validation"}


def summary(cfg: DictConfig, outcome: Outcome) -> str:
    """A short table: the run's measures, then where the stage time went."""
    lines = [f"{cfg.dataset.name} / {outcome.run_dir.parent.name}  ({outcome.run_dir})"]
    lines += [f"  {name:<16} {value:.4f}" for name, value in outcome.metrics.items()]
    if outcome.row:
        times = ", ".join(f"{k} {outcome.row[k]}" for k in ("index_s", "retrieve_s", "rerank_s", "total_s"))
        lines.append(f"  seconds: {times}; peak RSS {outcome.row['peak_rss_mb']} MB")
    return "\n".join(lines + llm_cost_lines(cfg, outcome))


def llm_cost_lines(cfg: DictConfig, outcome: Outcome) -> list[str]:
    """What each LLM stage spent, in the terms of ``estimate_only=true`` so the two can be compared."""
    metrics = json.loads((outcome.run_dir / "metrics.json").read_text())
    lines = []
    for slot in ("reranker", "reranker2", "reranker3"):
        stats = metrics.get(f"{slot}_stats") or {}
        if "llm_calls" in stats:
            spent = cost.measured(stats, cfg[slot].get("llm"))
            loaded = "yes" if stats.get("llm_weights_loaded") else "no"
            lines.append(f"  LLM ({slot}): {spent.describe()}; weights loaded: {loaded}")
            lines += [f"    {note}" for note in spent.notes]
    return lines


def refuse_tuning_on_test(cfg: DictConfig) -> None:
    """An optimiser that sees the test qrels reports a score selected on them: refuse it."""
    if not HydraConfig.initialized():
        return
    sweeper = str(HydraConfig.get().sweeper.get("_target_", ""))
    if "optuna" in sweeper.lower() and cfg.dataset.get("split") not in TUNABLE_SPLITS:
        raise ConfigError(
            f"dataset={cfg.dataset.name} (split {cfg.dataset.get('split')!r}): tuning is only offered on "
            f"{sorted(TUNABLE_SPLITS)} splits, e.g. dataset=scifact-train; evaluate the best setting once on test."
        )


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    """Returns the first measure, the objective that the Optuna sweeper maximises."""
    try:
        refuse_tuning_on_test(cfg)
        if cfg.get("estimate_only"):
            print(render(cfg, estimate_run(cfg)))
            return float("nan")  # no measure: nothing was evaluated
        with resumable(f"finished work is kept in {cfg.cache_dir}"):
            outcome = run_experiment(cfg)
    except RankbenchError as e:
        log.error("%s", e)
        sys.exit(2)
    except Exception as e:
        if (hint := missing_extra(e)) is None:
            raise
        log.error("retriever=%s reranker=%s: %s", cfg.retriever.name, cfg.reranker.get("name", "none"), hint)
        sys.exit(2)
    print(summary(cfg, outcome))
    return next(iter(outcome.metrics.values()))


if __name__ == "__main__":
    main()
