"""``estimate_only=true``: what a run's LLM stages would spend, found without calling an LLM.

The first stage runs (or comes from its cache): its ranking is what the rerankers would read. Each
reranking stage whose output is cached costs nothing and hands its cached ranking on. Any other stage
that spends LLM calls (harness/components.py, ``llm_requests``) lists its requests on its input and
they are priced by harness/cost.py. A stage that spends none and is not cached is not run: the next
stage is estimated on its input instead (the same documents in an earlier order, about the same
tokens). Nothing is written to the run folder or the leaderboard.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from rankbench.harness import cache
from rankbench.harness.cost import Cost, estimate
from rankbench.harness.experiment import prepare
from rankbench.harness.pipeline import STAGE_CACHE, Pipeline, stage_key
from rankbench.harness.runfile import read_trec_run
from rankbench.harness.stages import first_stage_run, spends_llm


@dataclass
class StageEstimate:
    slot: str
    name: str
    cost: Cost


def estimate_run(cfg: DictConfig) -> list[StageEstimate]:
    """One estimate per reranking stage that spends LLM calls, in pipeline order."""
    dataset, queries, _ = prepare(cfg)
    pipeline = Pipeline.from_config(cfg)
    cache_dir = Path(cfg.cache_dir)
    previous = first_stage_run(pipeline.stages[0].cfg, dataset.corpus, queries, cache_dir)
    run, key = previous.run, previous.key
    estimates = []
    for stage in pipeline.rerankers:
        key = stage_key(stage, key)
        spends = spends_llm(stage.cfg)
        if (entry := cache.lookup(cache_dir / STAGE_CACHE, key)) is not None:
            if spends:
                free = Cost(seconds=0.0, notes=["the stage's output is cached: no call"])
                estimates.append(StageEstimate(stage.slot, stage.name, free))
            run = read_trec_run(entry / "run.trec")
            continue
        if not spends:
            continue
        component = instantiate(stage.component_cfg)
        heads = {q.qid: run.get(q.qid, [])[: stage.depth] for q in queries}
        plan = component.llm_requests(queries, heads, dataset.corpus)
        estimates.append(StageEstimate(stage.slot, stage.name, estimate(plan, cache_dir)))
    return estimates


def render(cfg: DictConfig, estimates: list[StageEstimate]) -> str:
    lines = [f"{cfg.dataset.name} / {Pipeline.from_config(cfg).name}: LLM cost estimate (nothing was run or written)"]
    if not estimates:
        lines.append("  no stage spends LLM calls")
    for item in estimates:
        lines.append(f"  {item.slot} ({item.name}): {item.cost.describe()}")
        lines += [f"    {note}" for note in item.cost.notes]
    return "\n".join(lines)
