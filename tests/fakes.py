"""Scripted fakes for pure pipeline logic; no model runs here, and each says so in its name."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

from rankbench.harness.components import Pointwise
from rankbench.harness.llm import Completion
from rankbench.harness.types import Doc, Query


class ScriptedLengthScorer(Pointwise):
    """Scores a pair by the document's text length; records every pair it was asked to score."""

    calls: ClassVar[list[tuple[str, str]]] = []

    def __init__(self, name: str = "length") -> None:
        self.name = name

    def score(self, pairs: list[tuple[Query, Doc]]) -> list[float]:
        ScriptedLengthScorer.calls += [(q.qid, d.docid) for q, d in pairs]
        return [float(len(d.text)) for _, d in pairs]


class ScriptedStatusServer:
    """A scripted fake HTTP endpoint for pure retry logic: no model runs here.

    A real server cannot be made to answer 429 or 503 on demand, so this one (stdlib
    ``http.server`` in a thread, on a free loopback port) answers each POST with the next
    ``(status, headers, body)`` of its script and records every request's headers and JSON.
    """

    def __init__(self, script: list[tuple[int, dict[str, str], dict]]) -> None:
        self.script = list(script)
        self.requests: list[tuple[dict[str, str], dict]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append((dict(self.headers), body))
                status, headers, reply = fake.script.pop(0)
                payload = json.dumps(reply).encode()
                self.send_response(status)
                for name, value in {**headers, "Content-Type": "application/json"}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_port}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> ScriptedStatusServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class _WordTokens:
    """What the scripted chat backends share: an identity, and tokens counted as whitespace-separated words."""

    name: str
    model: str

    def identity(self) -> dict[str, str]:
        return {"backend": self.name, "model": self.model}

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def truncate(self, text: str, tokens: int) -> str:
        return " ".join(text.split()[:tokens])

    def prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        return sum(self.count_tokens(m["content"]) for m in messages)

    def load(self) -> None:
        """Nothing to load; counted, so a test can see whether a caller asked."""
        self.loads = getattr(self, "loads", 0) + 1


class ScriptedGradeBackend(_WordTokens):
    """A scripted fake chat backend for the judge's pure logic: no model runs here.

    It answers each prompt with the script's text for the first document title the prompt
    contains, counts its calls, and counts tokens as whitespace-separated words.
    """

    name = "scripted"
    model = "scripted-grades"
    concurrency = 2
    context_length = None

    def __init__(self, script: dict[str, str]) -> None:
        self.script = script
        self.calls = 0
        self._lock = threading.Lock()

    def complete(self, messages: list[dict[str, str]], max_tokens: int) -> Completion:
        with self._lock:
            self.calls += 1
        user = messages[-1]["content"]
        text = next(answer for title, answer in self.script.items() if title in user)
        return Completion(text=text, prompt_tokens=self.prompt_tokens(messages), completion_tokens=len(text.split()))


class ScriptedSpeedBackend(_WordTokens):
    """A scripted fake chat backend for pure calibration logic: no model runs here.

    Answers each call after a sleep of 0.1 ms per prompt token and 1 ms per generated token (a model
    that reads faster than it writes) with ``answer_tokens`` generated tokens at most, and records
    each call, so a test can see whether a calibration was measured or read back.
    """

    name = "scripted"
    model = "scripted-speed"
    context_length = None
    weights_loaded = False

    def __init__(self, threads: int = 1, answer_tokens: int = 64, stops_after: int | None = None) -> None:
        """``stops_after``: prompts longer than this get a one-token answer (a model that stops early)."""
        self.threads, self.answer_tokens, self.stops_after = threads, answer_tokens, stops_after
        self.calls: list[int] = []  # each call's max_tokens
        self.prompts: list[int] = []  # each call's prompt tokens

    def complete(self, messages: list[dict[str, str]], max_tokens: int) -> Completion:
        self.calls.append(max_tokens)
        prompt = sum(self.count_tokens(m["content"]) for m in messages)
        self.prompts.append(prompt)
        generated = min(max_tokens, self.answer_tokens)
        if self.stops_after is not None and prompt > self.stops_after:
            generated = min(generated, 1)
        time.sleep(1e-4 * prompt + 1e-3 * generated)
        return Completion("scripted", prompt, generated)
