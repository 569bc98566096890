"""Which slices of a ranking a listwise LLM sees, and in what order.

RankGPT slides a window from the bottom of the candidate list to the top, so a relevant
document found low down is carried upwards window by window. Unlike RankGPT's loop, the
last window always reaches position 0: with a depth that is not a multiple of the stride
it is shorter instead of being skipped, so the head of the list is never left unranked.
"""

from __future__ import annotations

from rankbench.harness.errors import ConfigError


def sliding_windows(depth: int, window: int, stride: int) -> list[tuple[int, int]]:
    """(start, end) positions, back to front: 100/20/10 gives (80, 100), (70, 90), ..., (0, 20)."""
    if window < 1:
        raise ConfigError(f"reranker.window must be at least 1, got {window}")
    if not 1 <= stride <= window:
        raise ConfigError(f"reranker.stride must be between 1 and reranker.window ({window}), got {stride}")
    windows = []
    end = depth
    while end > 0:
        start = max(end - window, 0)
        windows.append((start, end))
        if start == 0:
            break
        end -= stride
    return windows
