"""LLM listwise reranking: RankGPT sliding windows, one full-list call, or FIRST-style logits.

Per query the top ``depth`` candidates are reordered window by window (``sliding``: back to
front, so good documents bubble up; ``full``: one window over all of them, refused when the
prompt would not fit the model's context; ``first_token``: one forward pass per window,
ordered by the logits of the identifier tokens). Everything below ``depth`` keeps its
first-stage order beneath. Answers are cached on disk; a call that fails after the
backend's retries leaves its window as it was, is counted, and the run goes on.

``llm_requests`` enumerates the same windows without calling the LLM, for cost estimates. With
``sliding`` a window's contents depend on the answers to the windows before it; a cached answer
is applied as the run would apply it, but after the first uncached window of a query the rest are
enumerated on the incoming (first-stage) order. Their token counts are about the same (the same
kind of passages, shuffled), and whether such a window's answer is cached is a guess on that order.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rankbench.harness.components import Listwise
from rankbench.harness.cost import Plan, Request
from rankbench.harness.errors import ConfigError, DataError
from rankbench.harness.llm import CallClock, ChatBackend, LLMCallFailed, Messages
from rankbench.harness.response_cache import ResponseCache, request_key
from rankbench.harness.types import Corpus, Query, Run
from rankbench.rerankers.cross_encoder import doc_text
from rankbench.rerankers.permutation import labels, parse_permutation
from rankbench.rerankers.windows import sliding_windows

log = logging.getLogger(__name__)

STRATEGIES = ("sliding", "full", "first_token")


@dataclass(frozen=True)
class Prompt:
    """A template from conf/prompt/: placeholders {n}, {query}, {label}, {text}."""

    identifiers: str
    system: str
    prefix: str
    passage: str
    suffix: str
    answer_prefix: str = ""

    def messages(self, query: str, passages: list[str]) -> Messages:
        names = labels(len(passages), self.identifiers)
        n = len(passages)
        body = "\n".join(
            self.passage.format(label=label, text=text) for label, text in zip(names, passages, strict=True)
        )
        user = "\n\n".join([self.prefix.format(n=n, query=query), body, self.suffix.format(n=n, query=query)])
        messages = [{"role": "system", "content": self.system}, {"role": "user", "content": user}]
        if self.answer_prefix:
            messages.append({"role": "assistant", "content": self.answer_prefix})
        return messages


@dataclass
class QueryStats:
    calls: int = 0  # LLM calls made (cached answers are not calls)
    cached: int = 0
    failed: int = 0
    malformed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0  # this query's calls, their queueing included (llm_seconds is a CallClock's)

    def add(self, other: QueryStats) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


class ListwiseReranker(Listwise):
    def __init__(
        self,
        llm: ChatBackend,
        prompt: dict[str, Any],
        strategy: str = "sliding",
        window: int = 20,
        stride: int = 10,
        passage_tokens: int = 100,
        max_new_tokens: int | None = None,
        cache_dir: str = "runs/cache",
        name: str = "listwise",
    ):
        if strategy not in STRATEGIES:
            raise ConfigError(f"reranker.strategy must be one of {STRATEGIES}, got {strategy!r}")
        if strategy == "first_token" and not hasattr(llm, "first_token_scores"):
            raise ConfigError(
                f"reranker.strategy=first_token needs the logits of the answer's first token; the {llm.name} "
                "backend does not expose them (use llm=transformers)"
            )
        try:
            self.prompt = Prompt(**prompt)
        except TypeError as e:
            raise ConfigError(f"reranker.prompt: {e}; expected the keys of conf/prompt/rankgpt.yaml") from None
        sliding_windows(window, window, stride)  # validates window and stride now, not mid-run
        if strategy != "full":
            labels(window, self.prompt.identifiers)
        self.llm, self.strategy, self.name = llm, strategy, name
        self.window, self.stride = window, stride
        self.passage_tokens, self.max_new_tokens = passage_tokens, max_new_tokens
        self.cache = ResponseCache(Path(cache_dir) / "llm-answers", llm.identity())
        self.per_query: dict[str, QueryStats] = {}
        self.clock = CallClock()  # llm_seconds: queries in flight at once share the wall time

    def provenance(self) -> dict[str, str]:
        identity = self.llm.identity()
        return {"model": self.llm.model, "model_hash": identity.get("weights", identity.get("base_url", ""))}

    def stats(self) -> dict[str, Any]:
        total = QueryStats()
        for stats in self.per_query.values():
            total.add(stats)
        n = max(len(self.per_query), 1)
        return {
            "llm_calls": total.calls,
            "llm_cached": total.cached,
            "llm_failed": total.failed,
            "llm_malformed": total.malformed,
            "prompt_tokens": total.prompt_tokens,
            "completion_tokens": total.completion_tokens,
            "calls_per_query": round(total.calls / n, 3),
            "tokens_per_query": round((total.prompt_tokens + total.completion_tokens) / n, 1),
            "llm_seconds_per_query": round(self.clock.seconds / n, 3),
            "llm_seconds": round(self.clock.seconds, 3),
            "llm_weights_loaded": bool(self.llm.weights_loaded),  # False on a rerun answered from the cache
            "per_query": {qid: asdict(stats) for qid, stats in self.per_query.items()},
        }

    def rerank(self, queries: list[Query], heads: Run, corpus: Corpus) -> Run:
        """Each head reordered, scored by rank (the best gets the head's length)."""
        heads, passages = self._prepare(queries, heads, corpus)
        reranked: Run = {}
        with ThreadPoolExecutor(max(1, self.llm.concurrency)) as pool:
            jobs = pool.map(lambda q: (q, self._order(q, heads[q.qid], passages)), queries)
            for query, (order, stats) in tqdm(jobs, total=len(queries), unit="query", desc=self.name):
                self.per_query[query.qid] = stats
                reranked[query.qid] = [(docid, float(len(order) - i)) for i, docid in enumerate(order)]
        return reranked

    def llm_requests(self, queries: list[Query], run: Run, corpus: Corpus) -> Plan:
        """The windows ``rerank`` would send for these heads, counted in the model's tokens, no LLM called."""
        heads, passages = self._prepare(queries, run, corpus)
        requests: list[Request] = []
        for query in tqdm(queries, unit="query", desc=f"{self.name} (estimate)"):
            order = list(heads[query.qid])
            for start, end in self._spans(len(order)):
                if end - start <= 1:
                    continue
                messages, max_tokens, key = self._request(query, order[start:end], passages)
                answer = self.cache.get(key)
                generated = 0 if self.strategy == "first_token" else max_tokens
                tokens = self.llm.prompt_tokens(messages)
                requests.append(Request(tokens, generated, cached=answer is not None, messages=messages))
                if answer is not None:
                    order[start:end] = self._apply(answer, order[start:end], QueryStats())
        note = "sliding windows after a query's first uncached one enumerated on the incoming order"
        return Plan(self.llm, requests, note if self.strategy == "sliding" else "")

    def _prepare(self, queries: list[Query], heads: Run, corpus: Corpus) -> tuple[dict[str, list[str]], dict]:
        """Each query's head as docids, and every candidate's passage cut to ``passage_tokens``."""
        heads = {q.qid: [docid for docid, _ in heads.get(q.qid, [])] for q in queries}
        if self.strategy == "full":  # one window over the whole head: its identifiers must suffice
            labels(max(map(len, heads.values()), default=0), self.prompt.identifiers)
        wanted = {docid for head in heads.values() for docid in head}
        docs = corpus.get_many(wanted)
        if missing := wanted - docs.keys():
            raise DataError(f"{len(missing)} retrieved documents are not in {corpus.source}: {sorted(missing)[:5]}")
        passages = {docid: self.llm.truncate(doc_text(doc), self.passage_tokens) for docid, doc in docs.items()}
        return heads, passages

    def _spans(self, length: int) -> list[tuple[int, int]]:
        return [(0, length)] if self.strategy == "full" else sliding_windows(length, self.window, self.stride)

    def _order(self, query: Query, head: list[str], passages: dict[str, str]) -> tuple[list[str], QueryStats]:
        stats = QueryStats()
        order = list(head)
        for start, end in self._spans(len(order)):
            if end - start > 1:
                order[start:end] = self._window(query, order[start:end], passages, stats)
        return order, stats

    def _request(self, query: Query, docids: list[str], passages: dict[str, str]) -> tuple[Messages, int, str]:
        """A window's messages, its answer's token cap and its response-cache key; refused if it cannot fit."""
        messages = self.prompt.messages(query.text, [passages[d] for d in docids])
        max_tokens = self.max_new_tokens or 6 * len(docids) + 8
        self._check_fits(query, messages, max_tokens, len(docids))
        decoding = {"strategy": self.strategy, "max_tokens": max_tokens, "temperature": 0}
        return messages, max_tokens, request_key(messages, decoding)

    def _window(self, query: Query, docids: list[str], passages: dict[str, str], stats: QueryStats) -> list[str]:
        messages, max_tokens, key = self._request(query, docids, passages)
        answer = self.cache.get(key)
        if answer is None:
            self.llm.load()  # outside the timer: seconds measure calls, as the estimate does
            started = time.perf_counter()
            try:
                with self.clock.timing():
                    answer = self._ask(messages, max_tokens, len(docids))
            except LLMCallFailed as e:
                stats.failed += 1
                log.warning("query %s: a window of %d kept its order: %s", query.qid, len(docids), e)
                return docids
            finally:
                stats.seconds += time.perf_counter() - started
            self.cache.put(key, answer)
            stats.calls += 1
            stats.prompt_tokens += answer["prompt_tokens"]
            stats.completion_tokens += answer["completion_tokens"]
        else:
            stats.cached += 1
        return self._apply(answer, docids, stats)

    def _apply(self, answer: dict[str, Any], docids: list[str], stats: QueryStats) -> list[str]:
        """The window reordered by an answer: by first-token scores, or by the parsed (repaired) permutation."""
        if "scores" in answer:
            ranked = sorted(range(len(docids)), key=lambda i: -answer["scores"][i])  # stable on ties
        else:
            text = self.prompt.answer_prefix + answer["text"]  # the prefix was the answer's start
            parsed = parse_permutation(text, len(docids), self.prompt.identifiers)
            stats.malformed += parsed.malformed
            ranked = parsed.order
        return [docids[i] for i in ranked]

    def _ask(self, messages: Messages, max_tokens: int, n: int) -> dict[str, Any]:
        if self.strategy == "first_token":
            scores, prompt_tokens = self.llm.first_token_scores(messages, labels(n, self.prompt.identifiers))
            return {"scores": scores, "prompt_tokens": prompt_tokens, "completion_tokens": 0}
        completion = self.llm.complete(messages, max_tokens)
        return {
            "text": completion.text,
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
        }

    def _check_fits(self, query: Query, messages: Messages, max_tokens: int, candidates: int) -> None:
        """Refuse a prompt the model cannot read whole, rather than let the server cut it."""
        limit = self.llm.context_length
        if not limit:
            return
        needed = sum(self.llm.count_tokens(m["content"]) + 8 for m in messages) + max_tokens
        if needed > limit:
            raise ConfigError(
                f"query {query.qid}: the {self.strategy} prompt for {candidates} candidates needs about {needed} "
                f"tokens with the answer, beyond the model's {limit}; lower reranker.depth or "
                "reranker.passage_tokens, or use reranker.strategy=sliding"
            )
