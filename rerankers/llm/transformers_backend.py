"""A local causal LM as a chat backend: greedy generation, and first-token logits.

A Hugging Face folder or a GGUF file (llama.cpp's format; SmolLM2 ships that way here):
transformers reads GGUF weights and tokenizer itself (it needs the ``gguf`` package).

Building the backend reads only the tokenizer (to count and cut tokens, and to build the cache
keys of prompts); the weights are loaded at the first call that needs them, so a run answered
wholly from the response cache never loads them.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import torch
import transformers

from rankbench.harness import cache
from rankbench.harness.compute import compute_dtype, dtype_name, inference
from rankbench.harness.errors import ConfigError
from rankbench.harness.llm import Completion, Messages
from rankbench.harness.models import resolve_model, sole_gguf, weights_digest

log = logging.getLogger(__name__)


def locate(model: str, gguf_file: str | None) -> tuple[Path, Path | None]:
    """(folder, GGUF file or None); a folder with no config.json but one .gguf means that file."""
    if gguf_file and Path(gguf_file).expanduser().is_file():
        path = Path(gguf_file).expanduser()
        return path.parent, path
    folder = resolve_model(model)
    if gguf_file:
        path = folder / gguf_file
        if not path.is_file():
            raise ConfigError(f"llm.gguf_file: {path} does not exist")
        return folder, path
    if (gguf := sole_gguf(folder)) is not None:
        return folder, gguf
    if not (folder / "config.json").is_file():
        raise ConfigError(f"llm.model: {folder} has no config.json; name its GGUF file with llm.gguf_file=")
    return folder, None


@functools.lru_cache(maxsize=1)
def load_tokenizer(folder: Path, gguf_file: str | None) -> Any:
    source = {"gguf_file": gguf_file} if gguf_file else {}
    return transformers.AutoTokenizer.from_pretrained(folder, **source)


@functools.lru_cache(maxsize=1)
def load_config(folder: Path, gguf_file: str | None) -> Any:
    source = {"gguf_file": gguf_file} if gguf_file else {}
    return transformers.AutoConfig.from_pretrained(folder, **source)


@functools.lru_cache(maxsize=1)
def load_model(folder: Path, gguf_file: str | None) -> Any:
    """Kept for the next job: Hydra's basic launcher runs a sweep's jobs in one process, and reading
    SmolLM2's GGUF (dequantisation) takes ~20 s."""
    source = {"gguf_file": gguf_file} if gguf_file else {}
    return transformers.AutoModelForCausalLM.from_pretrained(folder, **source).eval()


class TransformersBackend:
    """Runs in-process on the reranker's thread; one query at a time (the cores are all in use)."""

    name = "transformers"
    concurrency = 1

    def __init__(
        self,
        model: str,
        gguf_file: str | None = None,
        dtype: str = "auto",
        threads: int | None = 2,
    ):
        if threads:
            torch.set_num_threads(threads)
        folder, gguf = locate(model, gguf_file)
        self.model, self.threads = model, threads
        self.digest = cache.file_digest(gguf)[:16] if gguf else weights_digest(folder)
        self._source = (folder, gguf.name if gguf else None)
        self.tokenizer = load_tokenizer(*self._source)
        if not self.tokenizer.chat_template:
            raise ConfigError(f"llm.model: {gguf or folder} has no chat template; an instruction-tuned model is needed")
        self.dtype = compute_dtype(dtype)
        self._lm: Any = None

    @functools.cached_property
    def context_length(self) -> int | None:
        """From the model's config (a few seconds for a GGUF: its metadata), not from its weights."""
        return getattr(load_config(*self._source), "max_position_embeddings", None)

    @property
    def weights_loaded(self) -> bool:
        return self._lm is not None

    def load(self) -> None:
        if self._lm is None:
            self._lm = load_model(*self._source)

    @property
    def lm(self) -> Any:
        self.load()
        return self._lm

    def identity(self) -> dict[str, str]:
        return {
            "backend": self.name,
            "model": self.model,
            "weights": self.digest,
            "compute_dtype": dtype_name(self.dtype),
        }

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def prompt_tokens(self, messages: Messages) -> int:
        """Exact: the chat template applied and tokenized, as ``complete`` sends it."""
        return self._encode(messages)["input_ids"].shape[1]

    def truncate(self, text: str, tokens: int) -> str:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        return text if len(ids) <= tokens else self.tokenizer.decode(ids[:tokens])

    def complete(self, messages: Messages, max_tokens: int) -> Completion:
        inputs = self._encode(messages)
        prompt_length = inputs["input_ids"].shape[1]
        with inference(self.dtype):
            out = self.lm.generate(
                **inputs,
                max_new_tokens=max_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
            )
        new = out[0, prompt_length:]
        return Completion(self.tokenizer.decode(new, skip_special_tokens=True), prompt_length, len(new))

    def first_token_scores(self, messages: Messages, labels: list[str]) -> tuple[list[float], int]:
        """Logits of each label's token at the first answer position, and the prompt's length."""
        ids = [self.tokenizer.encode(label, add_special_tokens=False) for label in labels]
        if bad := [label for label, i in zip(labels, ids, strict=True) if len(i) != 1]:
            raise ConfigError(
                f"reranker.strategy=first_token needs one token per identifier; {self.model} splits {bad[:3]}: "
                "use prompt.identifiers=alpha (reranker=listwise_first_token)"
            )
        inputs = self._encode(messages)
        with inference(self.dtype):
            logits = self.lm(**inputs).logits[0, -1].float()
        return [float(logits[i[0]]) for i in ids], inputs["input_ids"].shape[1]

    def _encode(self, messages: Messages) -> dict[str, torch.Tensor]:
        """The chat template; a final assistant message is a prefix the answer continues."""
        prefix = messages[-1]["role"] == "assistant"
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=not prefix, continue_final_message=prefix
        )
        return self.tokenizer(text, add_special_tokens=False, return_tensors="pt")
