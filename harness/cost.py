"""LLM cost known before a run (an estimate) and after it (what was measured), in the same terms.

Anything that spends LLM calls (the listwise reranker, a relevance judge) describes what it would
send as a list of :class:`Request`: the prompt's tokens, counted by the backend's own tokenizer and
chat template, and the completion's cap. :func:`estimate` turns requests and a backend into calls,
prompt tokens, completion tokens and

- for a local model (``transformers``, or an OpenAI-compatible server on loopback): seconds, from
  a calibration on this machine (:func:`calibrate`: prefill and decode tokens/s, measured once per
  model, backend, CPU and prompt length, cached on disk), because which backend is faster depends
  on the machine (prefill dominates a RankGPT window, and its speed differs across backends);
- for an API (``openai`` with a non-loopback ``base_url``): US dollars, from the per-model price
  tables in ``conf/llm/prices/`` (one file per provider; a folder, so that Hydra does not offer
  it as an ``llm=`` choice). A model missing from them is an error, never a price of 0.

Completion tokens are counted at their cap: an upper bound, and close to what small models spend
(SmolLM2-135M rarely stops before it). Requests whose answers are already cached are counted apart
and cost nothing.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from rankbench.harness.cache import key_hash, write_text_atomic
from rankbench.harness.config import conf_dir
from rankbench.harness.errors import ConfigError
from rankbench.harness.machine import cpu

log = logging.getLogger(__name__)

LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
CALIBRATION_DIR = "llm-calibration"
DECODE_TOKENS = 64  # the calibration's answer: long enough that per-token time dominates its overhead
MIN_DECODED = 8  # a shorter calibration answer cannot measure decoding
SAMPLES = 3  # the run's requests a calibration is timed on: one to warm up, one for prefill, one for decoding
SHORTEST_BUCKET = 256
STORY = "Write a long story about a river."  # small instruction models answer it at length


def prices_path() -> Path:
    return conf_dir() / "llm" / "prices"


@dataclass(frozen=True, slots=True)
class Request:
    """One LLM call as it would be sent: prompt tokens (chat template included) and the completion's cap."""

    prompt_tokens: int
    max_tokens: int  # 0 for a forward pass with no generation (first-token logits)
    cached: bool = False  # its answer is in the response cache: no call
    messages: list[dict[str, str]] | None = field(default=None, compare=False, repr=False)  # for calibration


@dataclass(frozen=True)
class Plan:
    """What a component would spend: the backend that would answer, the requests, and how they were found."""

    backend: Any  # a ChatBackend (harness/llm.py)
    requests: list[Request]
    note: str = ""


@dataclass(frozen=True)
class Rates:
    """A backend's speed on this machine, measured by :func:`calibrate`."""

    prefill_tps: float  # prompt tokens per second
    decode_tps: float  # generated tokens per second
    prompt_tokens: int  # the calibration prompt's length: prefill speed falls as prompts grow

    def seconds(self, request: Request) -> float:
        return request.prompt_tokens / self.prefill_tps + request.max_tokens / self.decode_tps


@dataclass
class Cost:
    """Calls and tokens, plus seconds (local) or US dollars (API); an estimate or a measurement."""

    calls: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float | None = None
    usd: float | None = None
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        parts = [
            f"{self.calls:,} calls ({self.cached:,} answers cached)",
            f"{self.prompt_tokens:,} prompt + {self.completion_tokens:,} completion tokens",
        ]
        if self.seconds is not None:
            parts.append(f"{self.seconds:,.1f} s")
        if self.usd is not None:
            parts.append(f"${self.usd:,.4f}")
        return "; ".join(parts)


def is_api(backend: Any) -> bool:
    """A backend that bills by token: an HTTP endpoint not on this machine."""
    base_url = getattr(backend, "base_url", None)
    return base_url is not None and urlparse(base_url).hostname not in LOOPBACK


def load_prices(path: Path | None = None) -> dict[str, dict[str, float]]:
    """Model name -> entry, from ``path``: a price table, or a folder of them (default conf/llm/prices/)."""
    path = path or prices_path()
    files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    table: dict[str, dict[str, float]] = {}
    where: dict[str, Path] = {}
    for file in files:
        try:
            entries = yaml.safe_load(file.read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"{file}: cannot read the LLM price table: {e}") from None
        if not isinstance(entries, dict):
            raise ConfigError(f"{file}: expected a mapping of model name to {{input: ..., output: ...}}")
        for model, entry in entries.items():
            if model in where:
                raise ConfigError(f"{file}: {model!r} is priced in {where[model]} too; keep one")
            table[model], where[model] = entry, file
    return table


def price(model: str, path: Path | None = None) -> tuple[float, float]:
    """(input, output) US dollars per 1M tokens for ``model``; a missing or malformed entry is an error."""
    path = path or prices_path()
    entry = load_prices(path).get(model)
    if entry is None:
        raise ConfigError(
            f"{path}: no price for model {model!r}; add the key {model!r} with input and output in US dollars "
            "per 1M tokens, from the provider's price list"
        )
    try:
        rates = float(entry["input"]), float(entry["output"])
    except (KeyError, TypeError, ValueError):
        expected = "{input: <USD per 1M tokens>, output: <USD per 1M tokens>}"
        raise ConfigError(f"{path}: {model}: expected {expected}, got {entry!r}") from None
    if min(rates) < 0:
        raise ConfigError(f"{path}: {model}: prices must be >= 0, got {entry!r}")
    return rates


def usd(prompt_tokens: int, completion_tokens: int, model: str, path: Path | None = None) -> float:
    per_input, per_output = price(model, path)
    return (prompt_tokens * per_input + completion_tokens * per_output) / 1e6


def estimate(plan: Plan, cache_dir: Path, prices: Path | None = None) -> Cost:
    """What ``plan`` will cost: calls and tokens of the uncached requests, then seconds or dollars."""
    todo = [r for r in plan.requests if not r.cached]
    cost = Cost(
        calls=len(todo),
        cached=len(plan.requests) - len(todo),
        prompt_tokens=sum(r.prompt_tokens for r in todo),
        completion_tokens=sum(r.max_tokens for r in todo),
        notes=[plan.note] if plan.note else [],
    )
    if is_api(plan.backend):
        cost.usd = usd(cost.prompt_tokens, cost.completion_tokens, plan.backend.model, prices)
        cost.notes.append(f"prices from {prices or prices_path()} ({plan.backend.model}); check them")
    elif todo:
        mean = round(cost.prompt_tokens / len(todo))
        samples = [r for r in todo if r.messages is not None and r.max_tokens >= MIN_DECODED]
        samples.sort(key=lambda r: abs(r.prompt_tokens - mean))
        rates = calibrate(plan.backend, cache_dir, mean, samples[:SAMPLES])
        cost.seconds = sum(rates.seconds(r) for r in todo)
        cost.notes.append(
            f"calibrated here at {rates.prompt_tokens} prompt tokens: prefill {rates.prefill_tps:.0f} tokens/s, "
            f"decode {rates.decode_tps:.1f} tokens/s; seconds exclude loading the weights"
        )
    else:
        cost.seconds = 0.0
    return cost


def bucket(prompt_tokens: int) -> int:
    """The calibration length for requests of this mean length: the nearest power of sqrt(2), at least 256,
    so that runs of similar prompts share one calibration and none is measured far from its length."""
    return max(SHORTEST_BUCKET, round(2 ** (round(2 * math.log2(max(prompt_tokens, 1))) / 2)))


def calibration_key(backend: Any, prompt_tokens: int) -> dict[str, Any]:
    """What decides a backend's speed: the model and backend (identity), threads and the CPU's flags."""
    return {
        "identity": backend.identity(),
        "threads": getattr(backend, "threads", None),
        **cpu(),
        "prompt_tokens": prompt_tokens,
    }


def calibrate(backend: Any, cache_dir: Path, mean_prompt_tokens: int, samples: Sequence[Request] = ()) -> Rates:
    """Prefill and decode speed of ``backend`` for prompts near ``mean_prompt_tokens``, measured once.

    With ``SAMPLES`` of the run's own requests (messages kept) the speeds are timed on them, sent one
    after another as the run sends them (:func:`measure_on`). Otherwise, synthetic prompts of that
    length: a small model gives them a one-token answer, and decoding timed after a short prompt ran
    about twice as fast as after a 2k-token window (SmolLM2-135M), which would halve the estimate.

    Cached as ``<cache_dir>/llm-calibration/<hash>.json`` with its key as a manifest, so a rerun of
    the estimate makes no call; delete the file to measure again (e.g. on a machine that was busy).
    """
    length = bucket(mean_prompt_tokens)
    if limit := getattr(backend, "context_length", None):
        length = min(length, limit - DECODE_TOKENS - 64)
    on_run = len(samples) >= SAMPLES
    key = calibration_key(backend, length) | {"on": "requests of the run, in turn" if on_run else "a synthetic prompt"}
    path = Path(cache_dir) / CALIBRATION_DIR / f"{key_hash(key)}.json"
    if path.is_file():
        return Rates(**json.loads(path.read_text())["rates"])
    log.info("calibrating %s at %d prompt tokens (once; cached in %s)", backend.model, length, path)
    rates = (on_run and measure_on(backend, samples)) or measure_rates(backend, length)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"key": key, "measured": datetime.now(UTC).isoformat(timespec="seconds"), "rates": asdict(rates)}
    write_text_atomic(path, json.dumps(record, indent=1, sort_keys=True))
    return rates


def measure_on(backend: Any, requests: Sequence[Request]) -> Rates | None:
    """Three of the run's requests in turn: the first answered with one token (loads weights, warms
    kernels, and leaves in a server's prefix cache the instructions the run's requests share, as the
    run's own earlier calls will), the second with one token (prefill), the third in full (prefill +
    decode). Timing one request twice would let llama.cpp reuse its whole prompt the second time.
    None when the last answer is too short to measure decoding."""
    warm, prefill, full = requests[:SAMPLES]
    backend.complete(warm.messages, 1)
    first, seconds = _timed(backend, prefill.messages, 1)
    prefill_tps = first.prompt_tokens / seconds
    answer, seconds = _timed(backend, full.messages, full.max_tokens)
    decode_s = seconds - answer.prompt_tokens / prefill_tps
    if answer.completion_tokens < MIN_DECODED or decode_s <= 0:
        return None
    return Rates(prefill_tps, answer.completion_tokens / decode_s, answer.prompt_tokens)


def measure_rates(backend: Any, prompt_tokens: int) -> Rates:
    """Time a one-token answer (prefill) and a ``DECODE_TOKENS`` answer (prefill + decode) to prompts of
    ``prompt_tokens``. Each prompt starts with different words, so a server's prefix cache cannot help. A
    model that stops early after the long prompt is timed decoding after a short one instead."""
    backend.complete([{"role": "user", "content": "Say hello."}], 1)  # loads weights, warms kernels
    first, seconds = _timed(backend, _calibration_prompt(backend, prompt_tokens, seed=1), 1)
    prefill_tps = first.prompt_tokens / seconds
    for messages in (_calibration_prompt(backend, prompt_tokens, seed=2), [{"role": "user", "content": STORY}]):
        second, seconds = _timed(backend, messages, DECODE_TOKENS)
        decode_s = seconds - second.prompt_tokens / prefill_tps
        if second.completion_tokens >= MIN_DECODED and decode_s > 0:
            return Rates(prefill_tps, second.completion_tokens / decode_s, prompt_tokens)
    raise ConfigError(
        f"calibrating {backend.model}: the answer had {second.completion_tokens} tokens in {decode_s:.2f} s of "
        f"decoding; at least {MIN_DECODED} are needed to measure decoding speed"
    )


def _timed(backend: Any, messages: list[dict[str, str]], max_tokens: int) -> tuple[Any, float]:
    started = time.perf_counter()
    completion = backend.complete(messages, max_tokens)
    return completion, time.perf_counter() - started


def _calibration_prompt(backend: Any, tokens: int, seed: int) -> list[dict[str, str]]:
    """Notes of about ``tokens`` tokens, then a request for a long answer."""
    words = ["river", "stone", "protein", "signal", "market", "cell", "energy", "model", "garden", "voltage"]
    rng = random.Random(seed)
    budget = max(tokens - backend.count_tokens(STORY) - 16, 1)
    filler = backend.truncate(" ".join(rng.choice(words) for _ in range(2 * budget)), budget)
    return [{"role": "system", "content": f"Notes: {filler}"}, {"role": "user", "content": STORY}]


def measured(stats: dict[str, Any], llm: Any | None = None) -> Cost:
    """What a run spent, from a component's ``stats()`` (``llm_calls``, tokens, ``llm_seconds``); ``llm``
    (a backend or its config node) adds dollars for an API. The calls are made: a missing price is a note."""
    cost = Cost(
        calls=int(stats.get("llm_calls", 0)),
        cached=int(stats.get("llm_cached", 0)),
        prompt_tokens=int(stats.get("prompt_tokens", 0)),
        completion_tokens=int(stats.get("completion_tokens", 0)),
        seconds=stats.get("llm_seconds"),
    )
    if llm is not None and is_api(llm):
        try:
            cost.usd = usd(cost.prompt_tokens, cost.completion_tokens, llm.model)
        except ConfigError as e:
            cost.notes.append(str(e))
    return cost
