"""The per-token request budget refuses before sending, and honours a 429's Retry-After."""

from __future__ import annotations

import pytest

from sandbox.cloudflare_emulator import ManualClock
from timeout_budget.clients.cloudflare import ApiToken, _retry_after
from timeout_budget.clients.request_budget import BudgetSpent, RateLimitedUntil, RequestBudget

pytestmark = pytest.mark.unit


def test_budget_refuses_once_spent_and_frees_as_the_window_slides() -> None:
    clock = ManualClock()
    budget = RequestBudget(3, clock=clock)
    for _ in range(3):
        budget.acquire()
        clock.advance(10)

    with pytest.raises(BudgetSpent) as spent:
        budget.acquire()
    remaining_before = budget.remaining()
    clock.advance(271)  # the first request leaves the 300 s window
    budget.acquire()

    assert remaining_before == 0
    assert spent.value.retry_after == pytest.approx(270)
    assert "budget (3 per 300s for this token) is spent" in str(spent.value)
    assert budget.remaining() == 0


def test_a_429_stops_every_request_until_retry_after() -> None:
    clock = ManualClock()
    budget = RequestBudget(100, clock=clock)

    budget.rate_limited(30)
    with pytest.raises(RateLimitedUntil) as held:
        budget.acquire()
    clock.advance(30)
    budget.acquire()

    assert held.value.retry_after == pytest.approx(30)
    assert budget.remaining() == 99  # the refused attempt was not counted
    assert budget.rate_limited_until is None


def test_a_429_without_retry_after_waits_a_minute() -> None:
    budget = RequestBudget(10, clock=ManualClock())
    assert budget.rate_limited(None) == 60


@pytest.mark.parametrize(
    ("header", "seconds"), [("7", 7.0), ("0.5", 0.5), (None, None), ("soon", None)]
)
def test_retry_after_header(header: str | None, seconds: float | None) -> None:
    assert _retry_after(header) == seconds


def test_token_never_shows_itself() -> None:
    token = ApiToken("  s3cr3t-token ")

    assert token.reveal() == "s3cr3t-token"
    assert "s3cr3t" not in repr(token) + str(token) + f"{token}" + token.fingerprint
    with pytest.raises(ValueError, match="empty"):
        ApiToken("  ")
