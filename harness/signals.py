"""A stop asked for from outside (SIGTERM from `timeout`, SLURM or a sweep launcher) unwinds like Ctrl-C.

Python's default for SIGTERM is to die on the spot; the JVM's default (pyserini's Lucene shares the
process) was worse: its shutdown ran exit() under Python's feet and crashed torch. Raising an
exception instead lets every ``with`` block run: half-written cache entries and run folders are
removed, finished cache entries, LLM answers and checkpoints stay, and a rerun resumes from them.
"""

from __future__ import annotations

import signal
from types import FrameType


class Stopped(KeyboardInterrupt):
    """The process was asked to stop; ``exit_code`` is the shell's 128 + signal number."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.exit_code = 128 + signum


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signum)


def stop_cleanly_on_sigterm() -> None:
    """Turn SIGTERM into :class:`Stopped` in the main thread (Ctrl-C already raises KeyboardInterrupt)."""
    signal.signal(signal.SIGTERM, _raise)
