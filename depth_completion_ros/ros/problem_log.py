"""Counted, throttled warnings for bad input (pure Python).

A stream of bad frames must log one line every few seconds per *kind* of problem (bad encoding, missing
camera_info, ...), however much the details vary from message to message, and no line may grow with the input:
echoed strings (frame_id, encoding) are clipped by :func:`clip`, and every line is bounded by
``max_line_chars``.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

MAX_ECHO_CHARS = 64
MAX_LINE_CHARS = 400


def clip(text: object, limit: int = MAX_ECHO_CHARS) -> str:
    """``repr`` of a string from the input, cut to ``limit`` characters with the full length noted."""
    text = str(text)
    if len(text) <= limit:
        return repr(text)
    return repr(text[:limit]) + f'... ({len(text)} characters)'


class ProblemLog:
    """Counts every problem by kind; ``warn`` emits at most one line per kind and ``period_s``."""

    def __init__(self, emit: Callable[[str], None], period_s: float = 2.0,
                 max_line_chars: int = MAX_LINE_CHARS) -> None:
        self._emit = emit
        self.period_s = period_s
        self.max_line_chars = max_line_chars
        self.counts: dict[str, int] = {}
        self._warned_at: dict[str, float] = {}
        self._lock = threading.Lock()  # the executor and the worker thread both warn

    def warn(self, kind: str, message: str) -> bool:
        """Count ``kind``; log ``message`` unless this kind was logged less than ``period_s`` ago (True if
        logged)."""
        now = time.monotonic()
        with self._lock:
            count = self.counts[kind] = self.counts.get(kind, 0) + 1
            if now - self._warned_at.get(kind, -1e18) < self.period_s:
                return False
            self._warned_at[kind] = now
        suffix = f' [{kind}: {count} so far]'
        if len(message) + len(suffix) > self.max_line_chars:
            message = message[:self.max_line_chars - len(suffix) - 3] + '...'
        self._emit(message + suffix)
        return True


class SilenceWatch:
    """Which inputs have received nothing for ``silence_s``: a node with a wrong topic name or QoS otherwise says
    so only on /diagnostics, which nobody watching the log sees. Pure: the caller passes the counts and the time
    (so tests need no clock)."""

    def __init__(self, silence_s: float, now: float) -> None:
        self.silence_s = silence_s
        self._last: dict[str, tuple[int, float]] = {}
        self._start = now

    def silent(self, counts: dict[str, int], now: float) -> dict[str, float]:
        """``{input: seconds without a message}`` for every input of ``counts`` (name -> messages received so
        far) whose count has not changed for ``silence_s`` or more."""
        quiet: dict[str, float] = {}
        for name, count in counts.items():
            last_count, since = self._last.get(name, (0, self._start))
            if count != last_count:
                self._last[name] = (count, now)
                continue
            if now - since >= self.silence_s:
                quiet[name] = now - since
        return quiet
