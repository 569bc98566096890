"""First-stage retrievers, one module per method; each is built by Hydra from conf/retriever/."""
