"""Python pipelines compose to the command line's config; bad ones are refused with the key at fault."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

import rankbench as rb
from rankbench.harness.config import compose
from rankbench.harness.errors import ConfigError
from rankbench.harness.pipeline import Pipeline


def plain(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)


def test_a_python_cascade_is_the_command_lines_config():
    cascade = rb.BM25(k1=1.2) >> rb.CrossEncoder("my/model", batch_size=8) % 50 >> rb.Listwise(window=10) % 20
    typed = compose(
        ["retriever.k1=1.2", "reranker=cross_encoder", "reranker.model=my/model", "reranker.batch_size=8"]
        + ["reranker.depth=50", "reranker@reranker2=listwise", "reranker2.window=10", "reranker2.depth=20"]
    )
    assert plain(cascade.config()) == plain(typed)
    pipeline = Pipeline.from_config(cascade.config())
    assert pipeline.name == "bm25+cross_encoder+listwise"
    assert pipeline.describe() == "bm25 > cross_encoder@50 > listwise@20"


def test_a_component_without_a_file_is_built_from_its_settings():
    custom = rb.Reranker(_target_="mine.Reranker", name="mine", alpha=0.5) % 7
    node = (rb.Dense() >> custom).config().reranker
    assert plain(node) == {"name": "mine", "_target_": "mine.Reranker", "alpha": 0.5, "depth": 7}


def test_bad_python_pipelines_name_what_is_wrong():
    with pytest.raises(ConfigError, match=r"retriever bm25: no setting k in conf/retriever/bm25.yaml; it has .*k1"):
        (rb.BM25(k=1.2) >> rb.Listwise()).config()
    with pytest.raises(ConfigError, match="a depth belongs to a reranking stage, not to bm25"):
        rb.BM25() % 10
    with pytest.raises(ConfigError, match="only rerankers follow a first stage, got the retriever dense"):
        rb.BM25() >> rb.Dense()
    with pytest.raises(ConfigError, match="at most 3 reranking stages"):
        rb.BM25() >> rb.Listwise() >> rb.Listwise() >> rb.Listwise() >> rb.Listwise()


def test_experiment_refuses_bad_arguments_before_running_anything():
    with pytest.raises(ConfigError, match="correction must be one of"):
        rb.experiment([rb.BM25()], "scifact", correction="sidak")
    with pytest.raises(ConfigError, match=r"systems need distinct names, got \['bm25', 'bm25'\]"):
        rb.experiment([rb.BM25(), rb.BM25(k1=1.2)], "scifact")
    with pytest.raises(ConfigError, match="names has 1 entries for 2 systems"):
        rb.experiment([rb.BM25(), rb.Dense()], "scifact", names=["only one"])
