"""The hybrid's settings are checked before any input runs, with errors naming the key; the documented
per-stage weight override composes."""

from __future__ import annotations

import pytest
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from rankbench.harness.errors import ConfigError
from rankbench.retrievers.hybrid import Hybrid


def build(make_cfg, *overrides: str) -> Hybrid:
    """The hybrid as the harness builds it (Hydra wraps a constructor's error: the ConfigError is its cause)."""
    try:
        return instantiate(make_cfg("retriever=hybrid", *overrides).retriever, _recursive_=False)
    except InstantiationException as e:
        raise e.__cause__ from None


def test_weights_default_to_one_each_and_override_per_stage(make_cfg):
    assert build(make_cfg).weights == {"bm25": 1.0, "dense": 1.0}
    assert build(make_cfg, "retriever.weights.dense=0.7").weights == {"bm25": 1.0, "dense": 0.7}
    assert build(make_cfg, "retriever.weights.bm25=0").weights == {"bm25": 0.0, "dense": 1.0}  # dense alone


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["retriever.weights.dense=-0.5"], r"retriever\.weights\.dense must be a finite number >= 0, got -0\.5"),
        (["retriever.weights.dense=heavy"], r"retriever\.weights\.dense must be a finite number >= 0, got 'heavy'"),
        (["retriever.weights.bm25=true"], r"retriever\.weights\.bm25 must be a finite number >= 0, got True"),
        (["retriever.weights.dense=nan"], r"retriever\.weights\.dense must be a finite number >= 0, got nan"),
        (["+retriever.weights.splade=1"], r"retriever\.weights names \['splade'\], not among retriever\.stages"),
        (["retriever.weights.bm25=0", "retriever.weights.dense=0"], r"retriever\.weights are all zero"),
        (["retriever.rrf_k=-1"], r"retriever\.rrf_k must be a finite number >= 0, got -1"),
        (
            ["retriever.method=linear", "retriever.normalization=softmax"],
            r"retriever\.normalization must be one of minmax, zscore, got 'softmax'",
        ),
        (["retriever.method=borda"], r"retriever\.method must be one of rrf, linear, got 'borda'"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(make_cfg, overrides: list[str], message: str):
    with pytest.raises(ConfigError, match=message):
        build(make_cfg, *overrides)
