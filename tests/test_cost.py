"""LLM cost logic: prices, the API/local split, estimates from requests, the calibration cache, and
token counting against the real SmolLM2 tokenizer (no weights loaded for it)."""

from pathlib import Path

import pytest

from rankbench.harness import cost
from rankbench.harness.cost import Plan, Request
from rankbench.harness.errors import ConfigError
from rankbench.harness.llm import CallClock
from rankbench.rerankers.llm.openai_backend import OpenAIBackend
from tests.fakes import ScriptedSpeedBackend

PRICES = "gpt-test:\n  input: 2.5\n  output: 10\nbroken:\n  input: cheap\n"


@pytest.fixture
def prices(tmp_path: Path) -> Path:
    path = tmp_path / "prices.yaml"
    path.write_text(PRICES)
    return path


def test_dollars_are_tokens_times_the_listed_price_per_million(prices) -> None:
    assert cost.price("gpt-test", prices) == (2.5, 10.0)
    assert cost.usd(2_000_000, 500_000, "gpt-test", prices) == pytest.approx(2 * 2.5 + 0.5 * 10)


def test_a_model_missing_from_the_table_is_an_error_naming_file_and_key(prices) -> None:
    with pytest.raises(ConfigError, match=r"prices\.yaml: no price for model 'gpt-unknown'"):
        cost.price("gpt-unknown", prices)
    with pytest.raises(ConfigError, match=r"prices\.yaml: broken: expected \{input"):
        cost.price("broken", prices)


def test_a_folder_of_tables_is_merged_and_a_model_priced_twice_is_refused(prices, tmp_path) -> None:
    folder = tmp_path / "prices"
    folder.mkdir()
    (folder / "a.yaml").write_text(PRICES)
    (folder / "b.yaml").write_text("other-model:\n  input: 1\n  output: 2\n")
    assert cost.price("other-model", folder) == (1.0, 2.0) and cost.price("gpt-test", folder) == (2.5, 10.0)
    (folder / "c.yaml").write_text("gpt-test:\n  input: 1\n  output: 2\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: 'gpt-test' is priced in .*a\.yaml too"):
        cost.price("other-model", folder)


def test_the_shipped_tables_price_every_model_they_list() -> None:
    table = cost.load_prices()
    assert table, "conf/llm/prices/ lists no model"
    for model in table:
        per_input, per_output = cost.price(model)
        assert 0 < per_input <= per_output  # output tokens cost more than input on every listed model


def test_only_a_remote_endpoint_is_billed() -> None:
    assert cost.is_api(OpenAIBackend(base_url="https://api.openai.com/v1", model="gpt-4o-mini"))
    assert not cost.is_api(OpenAIBackend(base_url="http://127.0.0.1:8080/v1"))
    assert not cost.is_api(OpenAIBackend(base_url="http://localhost:8080/v1"))
    assert not cost.is_api(ScriptedSpeedBackend())  # no base_url: an in-process model


def test_an_api_estimate_counts_uncached_requests_at_their_cap_and_prices_them(prices, tmp_path) -> None:
    backend = OpenAIBackend(base_url="https://api.example.com/v1", model="gpt-test")
    requests = [Request(1000, 100), Request(3000, 100), Request(5000, 100, cached=True)]
    estimate = cost.estimate(Plan(backend, requests), tmp_path, prices)
    assert (estimate.calls, estimate.cached) == (2, 1)
    assert (estimate.prompt_tokens, estimate.completion_tokens) == (4000, 200)
    assert estimate.usd == pytest.approx((4000 * 2.5 + 200 * 10) / 1e6)
    assert estimate.seconds is None
    missing = OpenAIBackend(base_url="https://api.example.com/v1", model="not-listed")
    with pytest.raises(ConfigError, match="not-listed"):
        cost.estimate(Plan(missing, requests), tmp_path, prices)


def test_calibration_is_measured_once_per_key_and_read_back(tmp_path) -> None:
    backend = ScriptedSpeedBackend()
    first = cost.calibrate(backend, tmp_path, 700)
    made = len(backend.calls)
    assert made == 3  # warm-up, a one-token answer (prefill), a long answer (decode)
    again = cost.calibrate(backend, tmp_path, 720)  # the same length bucket
    assert len(backend.calls) == made and again == first
    (record,) = (tmp_path / cost.CALIBRATION_DIR).glob("*.json")
    assert '"cpu_flags"' in record.read_text() and '"scripted-speed"' in record.read_text()  # its manifest
    cost.calibrate(ScriptedSpeedBackend(threads=2), tmp_path, 700)  # other threads: measured again
    assert len(list((tmp_path / cost.CALIBRATION_DIR).glob("*.json"))) == 2


def test_a_local_estimate_needs_no_calibration_when_every_answer_is_cached(tmp_path) -> None:
    backend = ScriptedSpeedBackend()
    estimate = cost.estimate(Plan(backend, [Request(100, 10, cached=True)]), tmp_path)
    assert (estimate.calls, estimate.seconds) == (0, 0.0) and backend.calls == []


def test_a_model_that_stops_early_after_a_long_prompt_is_timed_decoding_after_a_short_one(tmp_path) -> None:
    backend = ScriptedSpeedBackend(stops_after=100)
    rates = cost.calibrate(backend, tmp_path, 700)
    assert backend.calls == [1, 1, cost.DECODE_TOKENS, cost.DECODE_TOKENS] and rates.decode_tps > 0


def test_a_local_estimate_is_calibrated_on_the_requests_nearest_the_mean_length(tmp_path) -> None:
    backend = ScriptedSpeedBackend()
    words = [[{"role": "user", "content": "w " * n}] for n in (300, 650, 1400, 5000)]
    requests = [Request(len(m[0]["content"].split()), 96, messages=m) for m in words]
    estimate = cost.estimate(Plan(backend, requests), tmp_path)
    # mean 1838: 1400, 650, 300 nearest, sent in turn (warm-up, prefill, in full); never one prompt twice
    assert backend.prompts == [1400, 650, 300] and backend.calls == [1, 1, 96]
    (record,) = (tmp_path / cost.CALIBRATION_DIR).glob("*.json")
    assert '"requests of the run, in turn"' in record.read_text()
    assert estimate.calls == 4 and estimate.seconds > 0
    short = ScriptedSpeedBackend(stops_after=100)  # answers every one of them with one token
    cost.estimate(Plan(short, requests), tmp_path / "other")
    assert short.calls[:4] == [1, 1, 96, 1]  # too short to time decoding: the synthetic prompts follow
    few = ScriptedSpeedBackend()
    cost.estimate(Plan(few, requests[:2]), tmp_path / "few")  # two requests cannot take three roles
    assert few.prompts[0] == 2  # synthetic prompts, after their warm-up ("Say hello.": two words)


def test_a_calibration_that_cannot_decode_is_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match="at least 8"):
        cost.calibrate(ScriptedSpeedBackend(answer_tokens=2), tmp_path, 300)


@pytest.mark.slow
def test_prompt_tokens_match_the_chat_template_without_loading_weights() -> None:
    """SmolLM2's own tokenizer: the transformers backend counts exactly what it would feed the model, and the
    openai backend's ChatML estimate (content + 5 per message + 3) is within a token per message of it
    (tokens can merge across the template's boundaries)."""
    from rankbench.rerankers.llm.transformers_backend import TransformersBackend
    from tests.llm_server import smollm2_gguf

    local = TransformersBackend("HuggingFaceTB/SmolLM2-135M-Instruct")
    messages = [
        {"role": "system", "content": "You order passages by relevance."},
        {"role": "user", "content": "Query: do goldfish grow?\n[1] Goldfish grow as large as their tank allows."},
    ]
    templated = local.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)
    assert local.prompt_tokens(messages) == len(templated["input_ids"])
    assert not local.weights_loaded
    remote = OpenAIBackend(base_url="http://127.0.0.1:9/v1", tokenizer=str(smollm2_gguf()))
    assert abs(remote.prompt_tokens(messages) - local.prompt_tokens(messages)) <= len(messages)


def test_the_call_clock_counts_overlapping_calls_once() -> None:
    """Two calls in flight at once (a one-slot server's queue) take the wall time, not the sum."""
    ticks = iter([0.0, 4.0, 10.0, 12.0])  # read when the clock starts or stops, never in between
    clock = CallClock(now=lambda: next(ticks))
    first, second = clock.timing(), clock.timing()
    first.__enter__()  # t=0
    second.__enter__()  # already running: no read
    first.__exit__(None, None, None)  # one still in flight: no read
    second.__exit__(None, None, None)  # t=4
    with clock.timing():  # t=10 .. 12
        pass
    assert clock.seconds == 6.0  # the two calls overlapped for all 4 s: summing them would say 8 or more
