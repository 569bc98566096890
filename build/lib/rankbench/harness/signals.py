"""A stop asked for from outside (SIGTERM from `timeout`, SLURM or a sweep launcher) unwinds like Ctrl-C.

Python's default for SIGTERM is to die on the spot; the JVM's default (pyserini's Lucene shares the
process) was worse: its shutdown ran exit() under Python's feet and crashed torch. Raising an
exception instead lets every ``with`` block run: half-written cache entries and run folders are
removed, finished cache entries, LLM answers and checkpoints stay, and a rerun resumes from them.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

log = logging.getLogger(__name__)


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


@contextmanager
def resumable(kept: str) -> Iterator[None]:
    """Run an entry point's work so that a stop (SIGTERM, Ctrl-C) ends it with one line saying what was
    kept, and the shell's exit code, instead of a traceback."""
    stop_cleanly_on_sigterm()
    try:
        yield
    except KeyboardInterrupt as e:
        log.error("%s: %s; rerun the same command to resume", str(e) or "interrupted", kept)
        sys.exit(getattr(e, "exit_code", 130))
