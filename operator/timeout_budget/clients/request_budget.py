"""How many Cloudflare API requests the operator may still send with one token.

Cloudflare allows 1,200 requests per 5 minutes per user, shared with the dashboard and
every other tool using the account; past it, every call answers 429 for the rest of the
window. The SDK's own retries honour ``Retry-After`` only up to 60 s and then give up, so
left alone a busy operator would burn the limit, lock out the people using the dashboard
and retry into a storm. This budget is checked *before* a request is sent: a sliding
5-minute window holding at most ``limit`` requests (CloudflareZone
``spec.apiRequestBudget``, default 600), and, after a 429, nothing at all until the
``Retry-After`` moment has passed.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

WINDOW_SECONDS = 300.0
DEFAULT_LIMIT = 600
DEFAULT_RETRY_AFTER_SECONDS = 60.0
"""When a 429 carries no usable ``Retry-After``."""


class Refusal(Exception):
    """The budget refuses to send; ``retry_after`` seconds until it would."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BudgetSpent(Refusal):
    """The operator's own budget for the window is used up."""


class RateLimitedUntil(Refusal):
    """Cloudflare answered 429 and its ``Retry-After`` has not passed yet."""


class RequestBudget:
    """Requests sent with one token in the last 5 minutes, and the 429 embargo."""

    def __init__(
        self,
        limit: int = DEFAULT_LIMIT,
        *,
        clock: Callable[[], float] = time.time,
        window_seconds: float = WINDOW_SECONDS,
    ) -> None:
        if limit < 1:
            raise ValueError("a request budget needs a limit of at least 1")
        self.limit = limit
        self.window_seconds = window_seconds
        self._clock = clock
        self._sent: deque[float] = deque()
        self.rate_limited_until: float | None = None

    def acquire(self) -> None:
        """Count one request about to be sent, or raise ``Refusal`` and count nothing."""
        now = self._clock()
        if self.rate_limited_until is not None:
            if now < self.rate_limited_until:
                wait = self.rate_limited_until - now
                raise RateLimitedUntil(
                    f"Cloudflare answered 429 (rate limit); no requests for {_secs(wait)}", wait
                )
            self.rate_limited_until = None
        self._forget_before(now - self.window_seconds)
        if len(self._sent) >= self.limit:
            wait = self._sent[0] + self.window_seconds - now
            raise BudgetSpent(
                f"the operator's Cloudflare request budget ({self.limit} per "
                f"{_secs(self.window_seconds)} for this token) is spent; "
                f"next request in {_secs(wait)}",
                wait,
            )
        self._sent.append(now)

    def rate_limited(self, retry_after: float | None) -> float:
        """Cloudflare said 429: send nothing for ``retry_after`` seconds. Returns them."""
        wait = retry_after if retry_after and retry_after > 0 else DEFAULT_RETRY_AFTER_SECONDS
        until = self._clock() + wait
        self.rate_limited_until = max(self.rate_limited_until or 0.0, until)
        return wait

    def remaining(self) -> int:
        self._forget_before(self._clock() - self.window_seconds)
        return max(0, self.limit - len(self._sent))

    def used(self) -> int:
        return self.limit - self.remaining()

    def _forget_before(self, moment: float) -> None:
        while self._sent and self._sent[0] <= moment:
            self._sent.popleft()


def _secs(seconds: float) -> str:
    return f"{max(1, math.ceil(seconds))}s"
