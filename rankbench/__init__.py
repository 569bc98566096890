"""rankbench: compose retrievers and rerankers, evaluate them, compare them.

    import rankbench as rb

    bm25 = rb.BM25()
    frame = rb.experiment([bm25, bm25 >> rb.CrossEncoder("my/model") % 100, rb.Hybrid()], "scifact", baseline=0)
    table = rb.aggregate([bm25, rb.Hybrid()], ["scifact", "nfcorpus", "fiqa"])  # BEIR-style mean

The subpackages ``rankbench.harness``, ``rankbench.retrievers`` and ``rankbench.rerankers`` are the
checkout's top-level folders of those names (pyproject.toml maps them), and ``rankbench.conf`` its
Hydra configs, so pipelines built here and on the command line are one and the same.
"""

from rankbench.compare import aggregate, experiment
from rankbench.systems import BM25, CrossEncoder, Dense, Hybrid, Listwise, Reranker, Retriever, Spec, System

__all__ = [
    "BM25",
    "CrossEncoder",
    "Dense",
    "Hybrid",
    "Listwise",
    "Reranker",
    "Retriever",
    "Spec",
    "System",
    "aggregate",
    "experiment",
]
