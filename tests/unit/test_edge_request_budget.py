"""The request budgets refuse before sending: per zone, under one for the whole operator
(Cloudflare counts per user, whatever the token); a 429 stops every token until its
Retry-After (five minutes without one); Cloudflare's ``Ratelimit`` header is honoured."""

from __future__ import annotations

import pytest

from sandbox.cloudflare_emulator import ManualClock
from timeout_budget.clients.cloudflare_errors import _retry_after
from timeout_budget.clients.cloudflare_values import ApiToken
from timeout_budget.clients.request_budget import (
    BudgetSpent,
    RateLimitedUntil,
    RequestBudget,
    parse_ratelimit,
)

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
    assert "budget (3 per 300s for this zone) is spent" in str(spent.value)
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


def test_a_429_without_retry_after_holds_for_cloudflares_five_minute_block() -> None:
    # Was 60 s: Cloudflare blocks every call for five minutes once the limit is exceeded.
    budget = RequestBudget(10, clock=ManualClock())
    assert budget.rate_limited(None) == 300


def test_zones_count_against_one_operator_budget_whatever_their_token() -> None:
    clock = ManualClock()
    operator = RequestBudget(3, clock=clock, scope="for all of the operator's tokens")
    first = RequestBudget(10, clock=clock, shared=operator)
    second = RequestBudget(10, clock=clock, shared=operator)

    first.acquire()
    first.acquire()
    second.acquire()
    with pytest.raises(BudgetSpent) as spent:
        second.acquire()

    assert "3 per 300s for all of the operator's tokens" in str(spent.value)
    assert (first.remaining(), second.remaining(), first.used()) == (0, 0, 10)


def test_a_429_seen_by_one_zone_stops_every_zone() -> None:
    clock = ManualClock()
    operator = RequestBudget(100, clock=clock)
    first = RequestBudget(10, clock=clock, shared=operator)
    second = RequestBudget(10, clock=clock, shared=operator)

    first.rate_limited(None)
    with pytest.raises(RateLimitedUntil) as held:
        second.acquire()

    assert held.value.retry_after == pytest.approx(300)
    assert second.rate_limited_until == first.rate_limited_until == clock() + 300


@pytest.mark.parametrize(
    ("header", "said"),
    [
        ('"default";r=50;t=30', (50, 30.0)),
        ('"burst";r=7;t=4, "default";r=900;t=200', (7, 4.0)),
        (None, None),
        ("garbage", None),
    ],
)
def test_ratelimit_header(header: str | None, said: tuple[int, float] | None) -> None:
    assert parse_ratelimit(header) == said


def test_the_servers_count_stops_sending_before_a_429() -> None:
    clock = ManualClock()
    operator = RequestBudget(1200, clock=clock)
    zone = RequestBudget(600, clock=clock, shared=operator)

    zone.server_says(1, 40)  # the dashboard spent the rest
    zone.acquire()
    with pytest.raises(RateLimitedUntil) as held:
        zone.acquire()
    clock.advance(40)
    zone.acquire()

    assert "rate-limit header says no requests are left" in str(held.value)
    assert held.value.retry_after == pytest.approx(40)


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
