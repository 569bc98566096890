"""Turn what an LLM wrote into a permutation of the window, whatever it wrote.

Small models repeat identifiers, invent ones past the window, wrap the list in prose or
stop half-way. The repair is RankLLM's: keep valid identifiers in the order given, drop
repeats and unknown ones, then append the missing ones in their previous order, so a bad
answer can only reorder the window, never lose a document. Any repair marks the answer
malformed, for counting.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from rankbench.harness.errors import ConfigError

_BRACKETED = {"numeric": re.compile(r"\[\s*(\d+)\s*\]"), "alpha": re.compile(r"\[\s*([A-Z])\s*\]")}
_BARE = {"numeric": re.compile(r"\d+"), "alpha": re.compile(r"\b([A-Z])\b")}


def labels(n: int, style: str) -> list[str]:
    """Identifiers of a window of ``n``: 1..n, or A..Z (single letters are single tokens)."""
    if style == "numeric":
        return [str(i) for i in range(1, n + 1)]
    if style == "alpha":
        if n > 26:
            raise ConfigError(f"reranker.identifiers=alpha allows windows of at most 26, got {n}")
        return list(string.ascii_uppercase[:n])
    raise ConfigError(f"reranker.identifiers must be 'numeric' or 'alpha', got {style!r}")


@dataclass(frozen=True, slots=True)
class Parsed:
    order: list[int]  # 0-based positions in the window, best first
    malformed: bool


def parse_permutation(text: str, n: int, style: str = "numeric") -> Parsed:
    """The window order an answer asks for; bracketed ids win over bare ones when both occur."""
    names = labels(n, style)
    found = _BRACKETED[style].findall(text) or _BARE[style].findall(text)
    position = {name: i for i, name in enumerate(names)}
    order: list[int] = []
    for token in found:
        i = position.get(str(int(token)) if style == "numeric" else token)
        if i is not None and i not in order:
            order.append(i)
    repaired = len(order) != len(found) or len(order) != n
    order += [i for i in range(n) if i not in order]
    return Parsed(order, repaired)
