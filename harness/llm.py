"""What the listwise reranker and the judge (harness/judge.py) need from an LLM, whoever serves it.

A backend turns chat messages into one greedy completion and reports token counts; it
also counts and truncates text in its own tokens, so passages get a token budget that
means the same thing as the model's context length. Backends that can show the logits
of the first generated position (local models) also offer ``first_token_scores``.

A local backend reads only its tokenizer when built and loads the weights at the first real
call (``load``), so a run whose answers are all cached never pays for them (``weights_loaded``).
``prompt_tokens`` counts a request as the model will see it, chat template included, so that
cost estimates (harness/cost.py) count what a call would bill.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from rankbench.harness.errors import RankbenchError

Messages = list[dict[str, str]]  # [{"role": "system" | "user" | "assistant", "content": ...}]


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int


class CallClock:
    """Wall seconds during which at least one LLM call was in flight: what a run's calls cost in time.

    Summing each call's duration would count calls queued at a one-slot server (``concurrency`` > 1
    against llama.cpp) several times over, and disagree with the estimate (harness/cost.py), which
    prices the calls one after another. ``now`` is a clock, replaceable in tests."""

    def __init__(self, now: Callable[[], float] = time.perf_counter) -> None:
        self.seconds = 0.0
        self._now, self._active, self._since = now, 0, 0.0
        self._lock = threading.Lock()

    @contextmanager
    def timing(self) -> Iterator[None]:
        with self._lock:
            if self._active == 0:
                self._since = self._now()
            self._active += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
                if self._active == 0:
                    self.seconds += self._now() - self._since


class LLMCallFailed(RankbenchError):
    """A call still failed after every retry; the reranker keeps that window's order and counts it."""


class ChatBackend(Protocol):
    name: str  # "transformers" | "openai": part of the response-cache key
    model: str  # as configured
    concurrency: int  # queries the reranker may have in flight at once
    context_length: int | None  # prompt + completion tokens the model accepts (None: unknown)

    weights_loaded: bool  # this backend has loaded model weights into this process (never, for HTTP)

    def identity(self) -> dict[str, str]:
        """What decides the responses beyond the prompt: model id, weights digest, endpoint."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def truncate(self, text: str, tokens: int) -> str:
        """The longest prefix of ``text`` of at most ``tokens`` tokens."""
        ...

    def prompt_tokens(self, messages: Messages) -> int:
        """The prompt's length in the model's tokens, chat template included (exact or estimated)."""
        ...

    def load(self) -> None:
        """Make the weights ready (a no-op for HTTP); called before a timed call so timing excludes loading."""
        ...

    def complete(self, messages: Messages, max_tokens: int) -> Completion:
        """Greedy decoding (temperature 0); raises LLMCallFailed when the call cannot be made."""
        ...
