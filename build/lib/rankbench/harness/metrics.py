"""Standard IR measures through ir_measures, aggregated over every judged query.

A judged query with no retrieved documents scores 0 on every measure (``trec_eval -c``),
so a retriever cannot look better by returning nothing for hard queries.
"""

from __future__ import annotations

from collections.abc import Sequence

import ir_measures

from rankbench.harness.errors import ConfigError
from rankbench.harness.types import Qrels, Run


def parse_measures(names: Sequence[str]) -> list[ir_measures.Measure]:
    measures = []
    for i, name in enumerate(names):
        try:
            measures.append(ir_measures.parse_measure(str(name)))
        except (ValueError, NameError, SyntaxError, TypeError) as e:
            raise ConfigError(f"measures[{i}]={name!r} is not an ir_measures measure ({e})") from None
    if not measures:
        raise ConfigError("measures is empty; list at least one, e.g. [nDCG@10]")
    return measures


def evaluate(
    run: Run, qrels: Qrels, measures: Sequence[ir_measures.Measure]
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(aggregate, per-query) values keyed by the measure's ir_measures name, e.g. ``nDCG@10``."""
    names = [str(m) for m in measures]
    per_query = {qid: dict.fromkeys(names, 0.0) for qid in qrels}
    scored = {qid: {docid: score for docid, score in hits} for qid, hits in run.items() if qid in qrels}
    for metric in ir_measures.iter_calc(measures, qrels, scored):
        per_query[metric.query_id][str(metric.measure)] = float(metric.value)
    count = max(len(per_query), 1)
    aggregate = {name: sum(values[name] for values in per_query.values()) / count for name in names}
    return aggregate, per_query
