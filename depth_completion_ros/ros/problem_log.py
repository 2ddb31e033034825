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
