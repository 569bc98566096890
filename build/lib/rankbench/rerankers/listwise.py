"""LLM listwise reranking: RankGPT sliding windows, one full-list call, or FIRST-style logits.

Per query the top ``depth`` candidates are reordered window by window (``sliding``: back to
front, so good documents bubble up; ``full``: one window over all of them, refused when the
prompt would not fit the model's context; ``first_token``: one forward pass per window,
ordered by the logits of the identifier tokens). Everything below ``depth`` keeps its
first-stage order beneath. Answers are cached on disk; a call that fails after the
backend's retries leaves its window as it was, is counted, and the run goes on.
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
from rankbench.harness.errors import ConfigError, DataError
from rankbench.harness.types import Corpus, Query, Run
from rankbench.rerankers.cross_encoder import doc_text
from rankbench.rerankers.llm.base import ChatBackend, LLMCallFailed, Messages
from rankbench.rerankers.llm.response_cache import ResponseCache, request_key
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
    seconds: float = 0.0

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
            "llm_seconds_per_query": round(total.seconds / n, 3),
            "per_query": {qid: asdict(stats) for qid, stats in self.per_query.items()},
        }

    def rerank(self, queries: list[Query], heads: Run, corpus: Corpus) -> Run:
        """Each head reordered, scored by rank (the best gets the head's length)."""
        heads = {q.qid: [docid for docid, _ in heads.get(q.qid, [])] for q in queries}
        if self.strategy == "full":  # one window over the whole head: its identifiers must suffice
            labels(max(map(len, heads.values()), default=0), self.prompt.identifiers)
        wanted = {docid for head in heads.values() for docid in head}
        docs = corpus.get_many(wanted)
        if missing := wanted - docs.keys():
            raise DataError(f"{len(missing)} retrieved documents are not in {corpus.source}: {sorted(missing)[:5]}")
        passages = {docid: self.llm.truncate(doc_text(doc), self.passage_tokens) for docid, doc in docs.items()}
        reranked: Run = {}
        with ThreadPoolExecutor(max(1, self.llm.concurrency)) as pool:
            jobs = pool.map(lambda q: (q, self._order(q, heads[q.qid], passages)), queries)
            for query, (order, stats) in tqdm(jobs, total=len(queries), unit="query", desc=self.name):
                self.per_query[query.qid] = stats
                reranked[query.qid] = [(docid, float(len(order) - i)) for i, docid in enumerate(order)]
        return reranked

    def _order(self, query: Query, head: list[str], passages: dict[str, str]) -> tuple[list[str], QueryStats]:
        stats = QueryStats()
        order = list(head)
        spans = [(0, len(order))] if self.strategy == "full" else sliding_windows(len(order), self.window, self.stride)
        for start, end in spans:
            if end - start > 1:
                order[start:end] = self._window(query, order[start:end], passages, stats)
        return order, stats

    def _window(self, query: Query, docids: list[str], passages: dict[str, str], stats: QueryStats) -> list[str]:
        messages = self.prompt.messages(query.text, [passages[d] for d in docids])
        max_tokens = self.max_new_tokens or 6 * len(docids) + 8
        self._check_fits(query, messages, max_tokens, len(docids))
        decoding = {"strategy": self.strategy, "max_tokens": max_tokens, "temperature": 0}
        key = request_key(messages, decoding)
        answer = self.cache.get(key)
        if answer is None:
            started = time.perf_counter()
            try:
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
