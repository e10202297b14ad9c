"""Cloudflare's API rate limit: 1,200 requests per 5 minutes per user, then a block.

Cloudflare counts per *user*, across the dashboard, API keys and every token, and once
the limit is exceeded "all API calls for the next five minutes will be blocked" with 429
(``Retry-After``: seconds until capacity returns). Every answer carries the ``Ratelimit``
header (``"default";r=<left>;t=<seconds>``) and ``Ratelimit-Policy`` (``q``, ``w``); both
are documented (changelog 2025-09-03), so the emulator sends them, and can be told not to
(``headers=False``) to test a client without them.

NOT CONFIRMED, so the strict choice: the window slides (no burst across a boundary), and a
request sent during the block starts the five minutes again, so a client that keeps
polling a 429 stays locked out. The clock is injectable so tests can cross the five
minutes without waiting.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

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


class RateLimiter:
    """Counts requests per key (the token's user) in a sliding window, then blocks."""

    def __init__(
        self,
        limit: int = DEFAULT_LIMIT,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        clock: Clock = time.monotonic,
        *,
        headers: bool = True,
    ) -> None:
        self._lock = threading.Lock()
        self._sent: dict[str, deque[float]] = {}
        self._blocked: dict[str, float] = {}
        self.clock = clock
        self.limit = limit
        self.window_seconds = window_seconds
        self.headers = headers
        """Send ``Ratelimit``/``Ratelimit-Policy`` on every answer."""
        self.configure(limit, window_seconds)

    def configure(self, limit: int, window_seconds: float) -> None:
        """Change the limit (tests use small ones); counting starts afresh. The block
        after exceeding it lasts one window (five minutes by default)."""
        if limit < 1 or window_seconds <= 0:
            raise ValueError("the limit must be >= 1 and the window > 0 seconds")
        with self._lock:
            self.limit = limit
            self.window_seconds = window_seconds
            self._sent.clear()
            self._blocked.clear()

    def reset(self) -> None:
        with self._lock:
            self._sent.clear()
            self._blocked.clear()

    def acquire(self, key: str) -> int | None:
        """Count one request; ``None`` if allowed, else the seconds to wait (>= 1)."""
        now = self.clock()
        with self._lock:
            sent = self._forget(key, now)
            blocked = self._blocked.get(key)
            if (blocked is not None and now < blocked) or len(sent) >= self.limit:
                self._blocked[key] = now + self.window_seconds
                return max(1, math.ceil(self.window_seconds))
            self._blocked.pop(key, None)
            sent.append(now)
            return None

    def remaining(self, key: str) -> int:
        return self.state(key)[0]

    def state(self, key: str) -> tuple[int, int]:
        """Requests left for ``key`` and whole seconds until that changes."""
        now = self.clock()
        with self._lock:
            sent = self._forget(key, now)
            blocked = self._blocked.get(key)
            if blocked is not None and now < blocked:
                return 0, max(1, math.ceil(blocked - now))
            reset = sent[0] + self.window_seconds - now if sent else self.window_seconds
            return max(0, self.limit - len(sent)), max(0, math.ceil(reset))

    def header_values(self, key: str) -> dict[str, str]:
        """The rate-limit headers of an answer to ``key``'s request (none if switched off)."""
        if not self.headers:
            return {}
        left, reset = self.state(key)
        return {
            "Ratelimit": f'"default";r={left};t={reset}',
            "Ratelimit-Policy": f'"default";q={self.limit};w={math.ceil(self.window_seconds)}',
        }

    def _forget(self, key: str, now: float) -> deque[float]:
        sent = self._sent.setdefault(key, deque())
        while sent and sent[0] <= now - self.window_seconds:
            sent.popleft()
        return sent
