"""Rerankers, one module per method; each is built by Hydra from conf/reranker/."""
