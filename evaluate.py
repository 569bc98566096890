"""Evaluate one retrieval pipeline (or a sweep with -m) and record it on the leaderboard.

python evaluate.py                                   # BM25 on SciFact
python evaluate.py retriever=bm25_multifield max_queries=50
python evaluate.py -m retriever=bm25,bm25_multifield
"""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

from harness.errors import RankbenchError
from harness.experiment import Outcome, run_experiment

log = logging.getLogger("rankbench")


def summary(cfg: DictConfig, outcome: Outcome) -> str:
    """A short table: the run's measures, then where the stage time went."""
    lines = [f"{cfg.dataset.name} / {outcome.run_dir.parent.name}  ({outcome.run_dir})"]
    lines += [f"  {name:<16} {value:.4f}" for name, value in outcome.metrics.items()]
    if outcome.row:
        times = ", ".join(f"{k} {outcome.row[k]}" for k in ("index_s", "retrieve_s", "rerank_s", "total_s"))
        lines.append(f"  seconds: {times}; peak RSS {outcome.row['peak_rss_mb']} MB")
    return "\n".join(lines)


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        outcome = run_experiment(cfg)
    except RankbenchError as e:
        log.error("%s", e)
        sys.exit(2)
    print(summary(cfg, outcome))


if __name__ == "__main__":
    main()
