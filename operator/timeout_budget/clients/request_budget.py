"""How many Cloudflare API requests the operator may still send.

Cloudflare allows 1,200 requests per 5 minutes **per user**, across the dashboard, API
keys and every token; past it, every call is blocked for the next five minutes. The SDK's
own retries honour ``Retry-After`` only up to 60 s and then give up, so left alone a busy
operator would burn the limit, lock out the people using the dashboard and retry into a
storm. So every request is counted *before* it is sent, twice:

* against its zone's budget (CloudflareZone ``spec.apiRequestBudget``, default 600, under
  the operator-wide cap), so one zone cannot starve the others;
* against one budget for the whole operator (``TBO_CLOUDFLARE_REQUEST_BUDGET``), shared by
  every token it holds: the operator cannot tell which user a token belongs to, and two
  tokens of one user share Cloudflare's count.

After a 429 nothing at all is sent, with any token, until ``Retry-After`` has passed (five
minutes when Cloudflare gives none: its documented block). When Cloudflare's answers
carry its ``Ratelimit`` header (``"default";r=<left>;t=<seconds to reset>``), the
operator also stops at the server's count, which includes what other tools spent.
"""

from __future__ import annotations

import math
import re
import time
from collections import deque

from timeout_budget.model.timestamps import Clock

WINDOW_SECONDS = 300.0
DEFAULT_LIMIT = 600
GRAPHQL_LIMIT = 300
"""Cloudflare's GraphQL Analytics API: 300 dataset nodes per 5 minutes per user."""
DEFAULT_RETRY_AFTER_SECONDS = 300.0
"""When a 429 carries no usable ``Retry-After``: Cloudflare blocks every call for five
minutes once the limit is exceeded."""

_LIMIT_ITEM = re.compile(r";\s*r\s*=\s*(\d+)\s*;\s*t\s*=\s*(\d+)")


class NotSent(Exception):
    """The budget refuses to send; ``retry_after`` seconds until it would."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BudgetSpent(NotSent):
    """The operator's own budget for the window is used up."""


class RateLimitedUntil(NotSent):
    """Cloudflare answered 429 (or said nothing is left) and the wait has not passed."""


def parse_ratelimit(header: str | None) -> tuple[int, float] | None:
    """Cloudflare's ``Ratelimit`` header as (requests left, seconds until the window
    resets), the tightest of its items; ``None`` when absent or unreadable."""
    if not header:
        return None
    items = [(int(r), float(t)) for r, t in _LIMIT_ITEM.findall(header)]
    return min(items) if items else None


class RequestBudget:
    """Requests sent in the last 5 minutes, the 429 embargo and Cloudflare's own count.

    A budget with a ``shared`` parent (a zone's, under the operator's) counts each request
    in both and refuses when either would; a 429 or the server's count lands on the
    parent, since Cloudflare blocks the user, not one zone."""

    def __init__(
        self,
        limit: int = DEFAULT_LIMIT,
        *,
        clock: Clock = time.time,
        window_seconds: float = WINDOW_SECONDS,
        shared: RequestBudget | None = None,
        scope: str = "for this zone",
    ) -> None:
        if limit < 1:
            raise ValueError("a request budget needs a limit of at least 1")
        self.limit = limit
        self.window_seconds = window_seconds
        self.shared = shared
        self.scope = scope
        self._clock = clock
        self._sent: deque[float] = deque()
        self._embargo: float | None = None
        self._server: tuple[int, float] | None = None
        """Requests Cloudflare said are left, and until when that holds."""

    @property
    def rate_limited_until(self) -> float | None:
        """When the latest 429 embargo (here or in the shared budget) ends, if any."""
        moments = [b._embargo for b in self._chain() if b._embargo is not None]
        return max(moments) if moments else None

    def acquire(self, cost: int = 1) -> None:
        """Count one request about to be sent (``cost`` units of the budget: a GraphQL
        query costs its zones times its dataset nodes), or raise ``NotSent`` and count
        nothing."""
        now = self._clock()
        for budget in self._chain():
            budget._check(now, cost)
        for budget in self._chain():
            budget._sent.extend([now] * cost)
            if budget._server is not None:
                left, until = budget._server
                budget._server = (left - 1, until)

    def rate_limited(self, retry_after: float | None) -> float:
        """Cloudflare said 429: send nothing for ``retry_after`` seconds. Returns them."""
        wait = retry_after if retry_after and retry_after > 0 else DEFAULT_RETRY_AFTER_SECONDS
        root = self._root()
        until = self._clock() + wait
        root._embargo = max(root._embargo or 0.0, until)
        return wait

    def server_says(self, left: int, reset_seconds: float) -> None:
        """Cloudflare's ``Ratelimit`` header: ``left`` requests until ``reset_seconds``."""
        self._root()._server = (max(0, left), self._clock() + max(0.0, reset_seconds))

    def remaining(self) -> int:
        now = self._clock()
        left = []
        for budget in self._chain():
            budget._forget_before(now - budget.window_seconds)
            left.append(max(0, budget.limit - len(budget._sent)))
        return min(left)

    def used(self) -> int:
        return self.limit - self.remaining()

    def _check(self, now: float, cost: int = 1) -> None:
        if self._embargo is not None:
            if now < self._embargo:
                wait = self._embargo - now
                raise RateLimitedUntil(
                    f"Cloudflare answered 429 (rate limit); no requests for {_secs(wait)}", wait
                )
            self._embargo = None
        if self._server is not None:
            left, until = self._server
            if now >= until:
                self._server = None
            elif left <= 0:
                raise RateLimitedUntil(
                    "Cloudflare's rate-limit header says no requests are left; next request "
                    f"in {_secs(until - now)}",
                    until - now,
                )
        self._forget_before(now - self.window_seconds)
        if len(self._sent) + cost > self.limit:
            at = min(len(self._sent) - 1, max(0, len(self._sent) + cost - self.limit - 1))
            wait = self._sent[at] + self.window_seconds - now if self._sent else 0.0
            raise BudgetSpent(
                f"the operator's Cloudflare request budget ({self.limit} per "
                f"{_secs(self.window_seconds)} {self.scope}) is spent; "
                f"next request in {_secs(wait)}",
                wait,
            )

    def _chain(self) -> list[RequestBudget]:
        chain: list[RequestBudget] = []
        budget: RequestBudget | None = self
        while budget is not None:
            chain.append(budget)
            budget = budget.shared
        return chain

    def _root(self) -> RequestBudget:
        return self._chain()[-1]

    def _forget_before(self, moment: float) -> None:
        while self._sent and self._sent[0] <= moment:
            self._sent.popleft()


def _secs(seconds: float) -> str:
    return f"{max(1, math.ceil(seconds))}s"
