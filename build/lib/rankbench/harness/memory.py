"""Refuse work that would not fit in memory, before it starts, with the setting to change.

An engine estimates what it will allocate from its index statistics; :func:`check_memory`
compares that with the limit (``auto``: what the machine has available now) and stops with
an error naming the config keys that lower the need, instead of letting the kernel kill the run
halfway through.
"""

from __future__ import annotations

import re
from pathlib import Path

from rankbench.harness.errors import ConfigError

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def available_bytes(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """``MemAvailable`` from /proc/meminfo (None where the file does not exist, e.g. macOS)."""
    try:
        for line in meminfo.read_text(encoding="ascii").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def parse_size(text: str | int, key: str) -> int:
    """``"4GB"``, ``"512MiB"``, ``1000000`` -> bytes; anything else is a ConfigError naming ``key``."""
    if isinstance(text, int):
        return text
    match = _SIZE.match(str(text))
    unit = match.group(2).upper() if match else ""
    if not match or unit not in _UNITS:
        raise ConfigError(f"{key} must be 'auto' or a size such as 4GB or 512MiB, got {text!r}")
    return int(float(match.group(1)) * _UNITS[unit])


def check_memory(needed: int, limit: str | int, what: str, key: str, remedies: str) -> None:
    """Raise a ConfigError when ``needed`` bytes exceed ``limit`` (``"auto"``: available memory)."""
    allowed = available_bytes() if limit == "auto" else parse_size(limit, key)
    if allowed is None or needed <= allowed:
        return
    source = "available on this machine" if limit == "auto" else f"allowed by {key}={limit}"
    raise ConfigError(
        f"{what} needs about {needed / 1e9:.2f} GB but only {allowed / 1e9:.2f} GB is {source}. {remedies}"
    )
