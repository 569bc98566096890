"""Chat backends for the listwise reranker: a local causal LM and any OpenAI-compatible endpoint."""
