"""Rates, latency percentiles and the /diagnostics status of the node.

The measuring parts (:class:`RateMeter`, :class:`LatencyWindow`) are pure Python; the diagnostic_msgs classes
are imported only when a message is built. (diagnostic_updater is not installable through the pip wheels, and
one status with key/values is all the node needs.)
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np


class RateMeter:
    """Events per second over a sliding time window (monotonic clock)."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()
        self.count = 0
        self._lock = threading.Lock()  # ticked from the worker thread, read from the executor

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._times.append(now)
            self.count += 1
            self._trim(now)

    def rate_hz(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            if len(self._times) < 2:
                return 0.0
            span = self._times[-1] - self._times[0]
            return (len(self._times) - 1) / span if span > 0 else 0.0

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - self.window_s:
            self._times.popleft()


class LatencyWindow:
    """The last ``size`` samples of a duration (ms); percentiles on demand."""

    def __init__(self, size: int = 200) -> None:
        self._samples: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, value_ms: float) -> None:
        with self._lock:
            self._samples.append(float(value_ms))

    def percentile(self, q: float) -> float:
        with self._lock:
            if not self._samples:
                return float('nan')
            return float(np.percentile(np.fromiter(self._samples, dtype=np.float64), q))

    def mean(self) -> float:
        with self._lock:
            return float(np.mean(list(self._samples))) if self._samples else float('nan')

    def __len__(self) -> int:
        return len(self._samples)


class StageTimings:
    """Running mean per pipeline stage (decode, sync, project, prefill, network, encode, publish)."""

    def __init__(self, size: int = 100) -> None:
        self._windows: dict[str, LatencyWindow] = {}
        self._size = size

    def add(self, timings_ms: Mapping[str, float]) -> None:
        for stage, value in timings_ms.items():
            self._windows.setdefault(stage, LatencyWindow(self._size)).add(value)

    def means(self) -> dict[str, float]:
        return {stage: window.mean() for stage, window in self._windows.items()}


def status_level(drop_fraction: float, output_rate_hz: float, inputs_seen: bool) -> tuple[int, str]:
    """(level, message) with diagnostic_msgs levels 0 OK, 1 WARN, 2 ERROR."""
    if not inputs_seen:
        return 1, 'waiting for input'
    if output_rate_hz == 0.0:
        return 1, 'no output in the last window'
    if drop_fraction > 0.5:
        return 1, f'dropping {drop_fraction:.0%} of input frames (model slower than the sensor?)'
    return 0, 'ok'


def build_diagnostic_array(stamp: Any, name: str, hardware_id: str, level: int, message: str,
                           values: Mapping[str, Any]) -> Any:
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    status = DiagnosticStatus(level=bytes([level]), name=name, message=message, hardware_id=hardware_id,
                              values=[KeyValue(key=str(k), value=_format(v)) for k, v in values.items()])
    array = DiagnosticArray()
    array.header.stamp = stamp
    array.status = [status]
    return array


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f'{value:.3f}'
    return str(value)
