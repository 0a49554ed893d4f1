"""Per-camera counters for diagnostics: rates, latency percentiles, drops, skips, bad input,
input warnings and conversions (:mod:`weather_restore_ros.frame_input`).

Times are from a steady clock (``time.monotonic``), never ROS time: a bag replayed with
``--clock`` or a paused simulation must not distort rates and latencies.
"""
from __future__ import annotations

import threading
import time
from collections import Counter, deque

import numpy as np


class CameraStats:
    """Updated from the subscription callback and the inference thread; read at 1 Hz."""

    def __init__(self, window_s: float = 5.0, latency_samples: int = 300,
                 clock=time.monotonic):
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._in: deque[float] = deque()
        self._out: deque[float] = deque()
        self._latency_ms: deque[float] = deque(maxlen=latency_samples)
        self.received = 0
        self.published = 0
        self.dropped = 0          # replaced by a newer frame before inference took it
        self.skipped_clear = 0    # passed through: the prior said "clear"
        self.passthrough = 0      # restoration switched off (enabled = false)
        self.bad_input: Counter[str] = Counter()
        self._bad: deque[float] = deque()  # times of bad frames, for "recently" in diagnostics
        self.input_warnings: Counter[str] = Counter()   # restored, but a consumer may trip
        self._warned: deque[float] = deque()
        self.conversions: Counter[str] = Counter()      # restored after a conversion
        self.invalid_output = 0   # the model gave inf/NaN: the input was published instead
        self._invalid: deque[float] = deque()
        self.unsafe_output = 0    # the harm guard put the input back into part of the frame
        self._unsafe: deque[float] = deque()
        self.last_input: float | None = None
        self.weather: str = ''
        self.weather_score: float = 0.0

    def on_input(self) -> float:
        now = self._clock()
        with self._lock:
            self.received += 1
            self.last_input = now
            self._in.append(now)
        return now

    def on_dropped(self) -> None:
        with self._lock:
            self.dropped += 1

    def on_bad_input(self, reason: str) -> None:
        now = self._clock()
        with self._lock:
            self.bad_input[reason] += 1
            self._bad.append(now)

    def on_notes(self, warnings=(), conversions=()) -> None:
        """A decoded frame's input warnings and conversions (frame_input keys)."""
        if not (warnings or conversions):
            return
        now = self._clock()
        with self._lock:
            self.input_warnings.update(warnings)
            self.conversions.update(conversions)
            if warnings:
                self._warned.append(now)

    def on_output(self, received_at: float, *, skipped_clear=False, passthrough=False,
                  invalid_output=False, unsafe_output=False, weather: str | None = None,
                  weather_score: float = 0.0) -> None:
        now = self._clock()
        with self._lock:
            self.published += 1
            self._out.append(now)
            self._latency_ms.append((now - received_at) * 1e3)
            self.skipped_clear += bool(skipped_clear)
            self.passthrough += bool(passthrough)
            if invalid_output:
                self.invalid_output += 1
                self._invalid.append(now)
            if unsafe_output:
                self.unsafe_output += 1
                self._unsafe.append(now)
            if weather is not None:
                self.weather, self.weather_score = weather, weather_score

    def snapshot(self) -> dict:
        now = self._clock()
        with self._lock:
            for q in (self._in, self._out, self._bad, self._warned, self._invalid, self._unsafe):
                while q and now - q[0] > self.window_s:
                    q.popleft()
            lat = np.asarray(self._latency_ms) if self._latency_ms else None
            return {
                'input_rate_hz': len(self._in) / self.window_s,
                'output_rate_hz': len(self._out) / self.window_s,
                'latency_p50_ms': float(np.percentile(lat, 50)) if lat is not None else None,
                'latency_p95_ms': float(np.percentile(lat, 95)) if lat is not None else None,
                'received': self.received,
                'published': self.published,
                'dropped': self.dropped,
                'skipped_clear': self.skipped_clear,
                'passthrough': self.passthrough,
                'bad_input': dict(self.bad_input),
                'bad_input_recent': len(self._bad),  # within the last window_s
                'input_warnings': dict(self.input_warnings),
                'input_warning_recent': len(self._warned),
                'conversions': dict(self.conversions),
                'invalid_output': self.invalid_output,
                'invalid_output_recent': len(self._invalid),
                'unsafe_output': self.unsafe_output,
                'unsafe_output_recent': len(self._unsafe),
                'silent_s': None if self.last_input is None else now - self.last_input,
                'weather': self.weather,
                'weather_score': self.weather_score,
            }


def recent_problems(snapshot: dict) -> list[str]:
    """What went wrong within the window, one phrase each: a camera's WARN message."""
    s, parts = snapshot, []
    if s['bad_input_recent']:
        parts.append(f'{s["bad_input_recent"]} bad input frame(s) skipped')
    if s['input_warning_recent']:
        parts.append(f'{s["input_warning_recent"]} frame(s) restored despite input warnings '
                     '(input_warning.*)')
    if s['invalid_output_recent']:
        parts.append(f'{s["invalid_output_recent"]} frame(s) published unrestored '
                     '(non-finite model output)')
    if s['unsafe_output_recent']:
        parts.append(f'{s["unsafe_output_recent"]} frame(s) published partly '
                     'unrestored (colour speckle from the model)')
    return parts
