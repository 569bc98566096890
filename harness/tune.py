"""Turn an Optuna sweep's result into the overrides that evaluate the best setting on test.

python -m harness.tune runs/tune/bm25-scifact-train/optimization_results.yaml
-> retriever.k1=1.07 retriever.b=0.62
python -m harness.tune runs/tune/fusion-scifact-train/optimization_results.yaml
-> retriever.method=linear retriever.normalization=zscore retriever.weights.dense=0.8123

The overrides are meant for the test evaluation, so a sweep that varied the dataset is refused: its
"best" would carry a dataset choice into what should be the one run on test.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from rankbench.harness.errors import RankbenchError


def best_overrides(results: Path) -> list[str]:
    if not results.is_file():
        raise RankbenchError(f"{results}: no such file; run the tuning sweep first (make tune, make tune-fusion)")
    best = (yaml.safe_load(results.read_text()) or {}).get("best_params")
    if not best:
        raise RankbenchError(f"{results}: no best_params; did the sweep finish any trial?")
    if chosen := sorted(key for key in best if key.split(".")[0] in ("dataset", "+dataset")):
        raise RankbenchError(f"{results}: best_params sets {chosen}; tune on one train split, evaluate on test")
    return [f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}" for key, value in best.items()]


if __name__ == "__main__":
    try:
        print(" ".join(best_overrides(Path(sys.argv[1]))))
    except (RankbenchError, IndexError) as e:
        sys.exit(f"usage: python -m harness.tune <optimization_results.yaml>: {e}")
