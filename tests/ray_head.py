"""A real Ray head for tests, started apart from pytest as a user's would be, kept on 127.0.0.1.

How it stays on loopback (Ray 2.60; ``ss -ltnp`` shows every listener on 127.0.0.1):
``--node-ip-address=127.0.0.1`` alone is not enough, because Ray replaces a loopback address with
the machine's routable one (``services.resolve_ip_for_localhost``); only with
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` does ``get_node_ip_address`` answer 127.0.0.1, and Ray's
servers bind to the node address. Clients need the same variable, or they too rewrite 127.0.0.1
to the routable address. Token authentication is on, with a token of this session's own
(``RAY_AUTH_TOKEN``): a token left in ``~/.ray/auth_token`` by another Ray would otherwise switch
clients to token mode against a head that has none, and they would wait forever.

The head is one process (``ray start --head --block``) in a session of its own; it is stopped by
killing that process group, never by ``ray stop``, which would stop every Ray on the machine.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class RayHead:
    address: str  # host:port of the head's GCS, what ray.init(address=...) and RAY_ADDRESS take
    env: dict[str, str]  # what a client (this process or a subprocess) needs to reach it
    process: subprocess.Popen
    temp_dir: Path

    def stop(self) -> None:
        """SIGTERM to the head's process group, SIGKILL to what is left after a grace period."""
        for sig, grace in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and _group_alive(self.process.pid):
                self.process.poll()
                time.sleep(0.2)
        self.process.wait()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_head(num_cpus: int = 2, extra_env: dict[str, str] | None = None, timeout: float = 120) -> RayHead:
    """Start a head on loopback and return once it accepts clients (its "Ray runtime started." line)."""
    temp_dir = Path(tempfile.mkdtemp(prefix="rb-ray-"))  # short: Ray's socket paths must fit 107 bytes
    port = _free_port()
    env = {
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    command = [
        str(Path(sys.executable).parent / "ray"),
        "start",
        "--head",
        "--block",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        f"--ray-client-server-port={_free_port()}",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--temp-dir={temp_dir}",
        f"--num-cpus={num_cpus}",
        "--num-gpus=0",
        f"--object-store-memory={256 * 2**20}",
    ]
    log = temp_dir / "head.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(extra_env or {}), **env},
            start_new_session=True,
        )
    head = RayHead(f"127.0.0.1:{port}", env, process, temp_dir)
    deadline = time.monotonic() + timeout
    while b"Ray runtime started." not in log.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            text = log.read_text(errors="replace")[-3000:]
            head.stop()
            raise RuntimeError(f"the Ray head did not start: {text}")
        time.sleep(0.2)
    return head
