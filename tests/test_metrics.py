"""Measures on tiny inline qrels/runs with values worked out by hand."""

from __future__ import annotations

import math

import pytest

from rankbench.harness.errors import ConfigError
from rankbench.harness.metrics import evaluate, parse_measures

QRELS = {"q1": {"a": 1, "b": 0}, "q2": {"x": 2, "y": 1}, "q3": {"z": 1}}
RUN = {
    "q1": [("b", 3.0), ("a", 2.0), ("c", 1.0)],  # relevant doc at rank 2
    "q2": [("y", 5.0), ("x", 4.0)],  # both relevant, in the worse order
    # q3 retrieved nothing: it must count as zero, not vanish from the mean
}


def test_per_query_values_match_hand_computation():
    aggregate, per_query = evaluate(RUN, QRELS, parse_measures(["nDCG@10", "RR@10", "R@1", "P@2"]))
    ndcg_q2 = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))  # trec_eval linear gains: y=1 then x=2
    assert per_query["q1"]["nDCG@10"] == pytest.approx(1 / math.log2(3))
    assert per_query["q2"]["nDCG@10"] == pytest.approx(ndcg_q2)
    assert per_query["q1"]["RR@10"] == pytest.approx(0.5)
    assert per_query["q2"]["R@1"] == pytest.approx(0.5)
    assert per_query["q3"] == {"nDCG@10": 0.0, "RR@10": 0.0, "R@1": 0.0, "P@2": 0.0}
    assert aggregate["nDCG@10"] == pytest.approx((1 / math.log2(3) + ndcg_q2 + 0) / 3)
    assert aggregate["P@2"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)


def test_graded_relevance_threshold():
    _, per_query = evaluate(RUN, QRELS, parse_measures(["R(rel=2)@1"]))
    assert per_query["q2"]["R(rel=2)@1"] == 0.0  # y has grade 1, below the threshold


def test_measure_names_round_trip_as_ir_measures_prints_them():
    assert [str(m) for m in parse_measures(["nDCG@10", "R@100", "AP", "RR@10"])] == ["nDCG@10", "R@100", "AP", "RR@10"]


def test_unknown_measure_names_the_config_key():
    with pytest.raises(ConfigError, match=r"measures\[1\]='nDCGG@10' is not an ir_measures measure"):
        parse_measures(["nDCG@10", "nDCGG@10"])


def test_empty_measure_list():
    with pytest.raises(ConfigError, match="measures is empty"):
        parse_measures([])
