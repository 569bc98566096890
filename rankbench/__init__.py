"""rankbench: compose retrievers and rerankers, evaluate them, compare them.

The subpackages ``rankbench.harness``, ``rankbench.retrievers`` and ``rankbench.rerankers`` are the
checkout's top-level folders of those names (pyproject.toml maps them), and ``rankbench.conf`` its
Hydra configs.
"""
