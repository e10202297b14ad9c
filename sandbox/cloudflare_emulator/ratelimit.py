"""Cloudflare's API rate limit: 1,200 requests per 5 minutes per token, then 429s.

Past the limit, every call answers 429 for the rest of the window (with ``Retry-After``),
and the SDK retries a 429 only twice and honours ``Retry-After`` only up to 60 s: the
operator needs its own request budget. The emulator counts per token in fixed windows
that open with the first request, and takes an injectable clock so tests can cross a
window boundary without waiting five minutes.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_LIMIT = 1200
DEFAULT_WINDOW_SECONDS = 300.0

Clock = Callable[[], float]


class ManualClock:
    """A clock for tests: it stands still until ``advance`` moves it."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


@dataclass
class _Window:
    opened_at: float
    used: int


class RateLimiter:
    """Counts requests per key (the API token) in fixed windows."""

    def __init__(
        self,
        limit: int = DEFAULT_LIMIT,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        clock: Clock = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}
        self.clock = clock
        self.limit = limit
        self.window_seconds = window_seconds
        self.configure(limit, window_seconds)

    def configure(self, limit: int, window_seconds: float) -> None:
        """Change the limit (tests use small ones); counting starts afresh."""
        if limit < 1 or window_seconds <= 0:
            raise ValueError("the limit must be >= 1 and the window > 0 seconds")
        with self._lock:
            self.limit = limit
            self.window_seconds = window_seconds
            self._windows.clear()

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()

    def acquire(self, key: str) -> int | None:
        """Count one request; ``None`` if allowed, else the seconds to wait (>= 1)."""
        now = self.clock()
        with self._lock:
            window = self._windows.get(key)
            if window is None or now >= window.opened_at + self.window_seconds:
                window = _Window(opened_at=now, used=0)
                self._windows[key] = window
            if window.used < self.limit:
                window.used += 1
                return None
            return max(1, math.ceil(window.opened_at + self.window_seconds - now))

    def remaining(self, key: str) -> int:
        now = self.clock()
        with self._lock:
            window = self._windows.get(key)
            if window is None or now >= window.opened_at + self.window_seconds:
                return self.limit
            return max(0, self.limit - window.used)
