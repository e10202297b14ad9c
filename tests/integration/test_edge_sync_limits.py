"""Cloudflare saying no: 429s, 5xx, hangs, a spent budget, a rejected token; and the token
never showing up anywhere a person (or a log collector) could read it.

What a user sees: a failure reason per route and a condition, nothing lost at Cloudflare,
a bounded number of requests while Cloudflare refuses, and the sync completing once it
answers again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
from typing import Any

import cloudflare
import pytest

from tests.integration.edge_fixtures import (
    API,
    NS,
    TOKEN,
    ZONE,
    EdgeWorld,
    MetricsRecorder,
    cache_rule,
    condition,
    edge_world,
    key,
    read_timeout,
    route_spec,
    zone_spec,
)
from timeout_budget.clients.cloudflare import CloudflareClient
from timeout_budget.clients.cloudflare_errors import CloudflareError
from timeout_budget.clients.cloudflare_values import ApiToken
from timeout_budget.clients.request_budget import RequestBudget
from timeout_budget.edge import ZoneNotReady

pytestmark = pytest.mark.integration


def test_429_is_honoured_nothing_is_lost_and_the_next_flush_succeeds(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="enterprise")
    edge.emu.add_rules(zone_id, [cache_rule("other", "other.example.com")])
    before = edge.emu.rules(zone_id)
    route = route_spec(required=300)
    routes, wanted = {API: route}, {API: [read_timeout(route, 301)]}

    async def scenario() -> list[Any]:
        await edge.sync(zone_id)
        edge.emu.fail_next(1, status=429, retry_after=30, method="GET")
        limited = await edge.cycle(routes, wanted)
        during = edge.emu.rules(zone_id)
        sent = len(edge.emu.requests())
        edge.clocks.advance(15)  # the next engine cycle, still inside Retry-After
        held = await edge.cycle(routes, wanted)
        quiet = len(edge.emu.requests()) == sent
        edge.clocks.advance(15)
        done = await edge.cycle(routes, wanted)
        return [limited, during, held, quiet, done]

    limited, during, held, quiet, done = edge.run(scenario)
    after = edge.emu.rules(zone_id)

    assert "Cloudflare rate limit (429): retry after 30s" in limited[API]
    assert during == before  # nothing lost
    assert "holding back until" in held[API]
    assert quiet  # not a single request while Cloudflare said wait
    assert done == {}
    assert after[1] == before[0]  # the operator's rule goes in front; the user's stays
    assert [r["ref"] for r in after] == ["tbo_shop_api", "other"]


def test_a_429_on_one_rule_write_stops_the_zones_other_writes(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="enterprise")
    edge.emu.add_rules(zone_id, [cache_rule("other", "other.example.com")])
    names = ("a", "b", "c")
    routes = {key(n): route_spec(f"{n}.example.com", required=300) for n in names}
    wanted = {k: [read_timeout(s, 301)] for k, s in routes.items()}

    async def scenario() -> list[Any]:
        await edge.sync(zone_id)
        edge.emu.clear_requests()
        # The first of the three rule creates is answered 429: the other two must not
        # be sent (nor retried by the SDK) before Retry-After has passed.
        edge.emu.fail_next(
            1, status=429, retry_after=30, method="POST", path_prefix=f"/zones/{zone_id}/"
        )
        limited = await edge.cycle(routes, wanted)
        sent = [(e.method, e.status) for e in edge.emu.requests()]
        edge.clocks.advance(15)
        held = await edge.cycle(routes, wanted)
        quiet = len(edge.emu.requests()) == len(sent)
        edge.clocks.advance(15)
        return [limited, sent, held, quiet, await edge.cycle(routes, wanted)]

    limited, sent, held, quiet, done = edge.run(scenario)
    after = edge.emu.rules(zone_id)

    assert sent == [("GET", 200), ("POST", 429)]  # the read, the refused create; no more
    assert set(limited) == set(routes)
    assert all("Cloudflare rate limit (429): retry after 30s" in m for m in limited.values())
    assert all("holding back until" in m for m in held.values())
    assert quiet
    assert done == {}
    assert sorted(r["ref"] for r in after[:3]) == ["tbo_shop_a", "tbo_shop_b", "tbo_shop_c"]
    assert after[3]["ref"] == "other"


def test_500_is_reported_backed_off_and_then_synced(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="enterprise")
    route = route_spec(required=300)
    routes, wanted = {API: route}, {API: [read_timeout(route, 301)]}

    async def scenario() -> list[Any]:
        await edge.sync(zone_id)
        # The zone has no entry point yet: the operator's write creates it.
        edge.emu.fail_next(1, status=500, method="POST", path_prefix=f"/zones/{zone_id}/rulesets")
        failed = await edge.cycle(routes, wanted)
        condition_after = edge.registry.conditions(NS, API, route)[0]
        edge.clocks.advance(15)
        return [failed, condition_after, await edge.cycle(routes, wanted)]

    failed, synced_condition, done = edge.run(scenario)
    found = edge.emu.rules(zone_id)

    assert "Cloudflare error 500 10001: Internal server error" in failed[API]
    assert synced_condition.reason == "SyncFailed"
    assert "(retried next cycle)" in synced_condition.message
    assert done == {}
    assert [r["action_parameters"]["read_timeout"] for r in found] == [301]


def test_a_hanging_request_times_out_and_is_retried(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="enterprise")
    edge.new_registry(request_timeout_seconds=0.5)
    route = route_spec(required=300)
    routes, wanted = {API: route}, {API: [read_timeout(route, 301)]}

    async def scenario() -> list[dict[str, str]]:
        await edge.sync(zone_id)
        edge.emu.hang_next(
            1, hold_seconds=5, method="POST", path_prefix=f"/zones/{zone_id}/rulesets"
        )
        failed = await edge.cycle(routes, wanted)
        edge.clocks.advance(15)
        return [failed, await edge.cycle(routes, wanted)]

    failed, done = edge.run(scenario)

    assert "Cloudflare did not answer in time" in failed[API]
    assert done == {}


def test_a_spent_budget_refuses_without_sending(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="enterprise")
    metrics = MetricsRecorder()
    edge.new_registry(metrics=metrics)
    spec = zone_spec(zone_id, apiRequestBudget=10)
    route = route_spec(required=300)

    async def scenario() -> tuple[list[dict[str, str]], dict[str, Any]]:
        await edge.sync(spec)  # 2 requests
        outcomes = []
        # 2 requests each: a fresh GET of the entry point, then one write (the first
        # creates the entry point holding the rule, the others edit the rule)
        for seconds in (301, 302, 303, 304, 305):
            edge.clocks.advance(1)
            outcomes.append(await edge.cycle_api(route, read_timeout(route, seconds)))
        status = await edge.sync(spec)
        return outcomes, status

    outcomes, status = edge.run(scenario)
    sent = len(edge.emu.requests())

    assert sent == 10
    assert outcomes[:4] == [{}, {}, {}, {}]
    assert "request budget (10 per 300s for this zone) is spent" in outcomes[4][API]
    assert status["requestsRemaining"] == 0
    assert condition(status, "EdgeSynced")["reason"] == "BudgetExhausted"
    assert len(metrics.requests) == sent  # every request sent was counted
    assert ("create_cache_ruleset", "ok") in metrics.requests
    assert metrics.requests.count(("edit_cache_rule", "ok")) == 3
    assert metrics.not_sent == ["budget_spent", "budget_spent"]  # the cycle, the re-read
    assert metrics.budgets[(NS, ZONE)] == (0, 10)
    assert metrics.synced[(NS, ZONE)] is False


@pytest.mark.usefixtures("no_ambient_credentials")
def test_a_429_storm_costs_a_bounded_number_of_requests_and_ends_synced() -> None:
    with edge_world(rate_limit=20) as edge:  # Cloudflare's limit per 300 s, shared
        zone_id = edge.emu.add_zone(plan="enterprise")
        names = [f"r{i}" for i in range(5)]
        routes = {key(n): route_spec(f"{n}.example.com", required=300) for n in names}
        wanted = {k: [read_timeout(s, 301)] for k, s in routes.items()}

        async def scenario() -> list[dict[str, str]]:
            await edge.sync(zone_id)
            with cloudflare.Cloudflare(api_token=TOKEN, base_url=edge.emu.base_url) as dashboard:
                for _ in range(18):  # someone else spends the rest of the window
                    dashboard.zones.settings.get("proxy_read_timeout", zone_id=zone_id)
            edge.emu.clear_requests()
            outcomes = []
            for _ in range(24):  # 6 minutes of 15 s cycles, every route wanting its rule
                outcomes.append(await edge.cycle(routes, wanted))
                edge.clocks.advance(15)
            return outcomes

        outcomes = edge.run(scenario)
        statuses = [e.status for e in edge.emu.requests()]
        found = edge.emu.rules(zone_id)

    # One refused read; then the read (no entry point), the entry point created with the
    # first route's rule, and one create per other route.
    assert statuses == [429, 404, 200, 200, 200, 200, 200]
    assert all(len(o) == 5 for o in outcomes[:19])  # reported each cycle while held back
    assert outcomes[-1] == {}
    assert len(found) == 5


def test_a_rejected_token_stops_requests_until_the_secret_changes(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="enterprise")
    spec = zone_spec(zone_id)
    route = route_spec(required=300)

    async def scenario() -> list[Any]:
        rejected = await edge.sync(spec, "wrong-token")
        again = await edge.sync(spec, "wrong-token")
        sent = len(edge.emu.requests())
        edge.registry.observe(NS, API, route)
        with pytest.raises(ZoneNotReady):
            await edge.registry.apply(NS, API, route, [read_timeout(route, 301)])
        fixed = await edge.sync(spec)
        return [rejected, again, sent, fixed]

    rejected, again, sent, fixed = edge.run(scenario)

    synced = condition(rejected, "EdgeSynced")
    assert (synced["status"], synced["reason"]) == ("False", "AuthFailed")
    assert "rejected the API token" in synced["message"]
    assert condition(again, "EdgeSynced")["reason"] == "AuthFailed"
    assert sent == 1  # the second reconcile sent nothing
    assert condition(fixed, "EdgeSynced")["status"] == "True"


@pytest.mark.usefixtures("no_ambient_credentials")
def test_the_token_appears_in_no_log_status_condition_or_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    with edge_world() as edge:  # started after caplog.set_level: its logs are read too
        zone_id = edge.emu.add_zone(plan="enterprise")
        edge.emu.add_dns_record(zone_id, "direct.example.com", "A", "192.0.2.1", proxied=True)
        edge.new_registry(request_timeout_seconds=0.5)
        spec = zone_spec(zone_id, proxyReadTimeoutSeconds=300)
        route = route_spec(required=300, dns_only="direct.example.com")
        routes = {API: route}
        wanted = {API: [read_timeout(route, 301)]}

        async def scenario() -> None:
            texts.append(json.dumps(await edge.sync(spec, "wrong-token")))
            texts.append(json.dumps(await edge.sync(spec)))
            for fault in ({"status": 429}, {"status": 500}, {"status": 400}, None):
                if fault is not None:
                    edge.emu.fail_next(1, **fault)
                failures = await edge.cycle(routes, wanted)
                texts.extend(failures.values())
                texts.extend(repr(c) for c in edge.registry.conditions(NS, API, route))
                edge.clocks.advance(60)
            edge.emu.hang_next(1, hold_seconds=3)
            texts.append(json.dumps(await edge.sync(spec)))
            texts.append(repr(edge.registry) + repr(edge.registry.__dict__))

        edge.run(scenario)

    captured = caplog.text + "\n".join(texts)
    assert "wrong-token" not in captured
    assert TOKEN not in captured
    assert "rate limit" in captured  # the faults were seen
    assert "did not answer in time" in captured


def test_client_errors_carry_neither_the_token_nor_the_sdks_request(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="pro")

    async def scenario() -> list[BaseException]:
        caught: list[BaseException] = []
        for token, fault in (
            (TOKEN, {"status": 429}),
            (TOKEN, {"status": 500}),
            (TOKEN, None),  # the plan refuses the PATCH: 400
            ("wrong-token", None),
        ):
            client = CloudflareClient(
                ApiToken(token),
                budget=RequestBudget(clock=edge.clocks.registry),
                base_url=edge.emu.base_url,
                timeout_seconds=2,
            )
            if fault is not None:
                edge.emu.fail_next(1, **fault)
            try:
                await client.set_proxy_read_timeout(zone_id, 300)
            except CloudflareError as exc:
                caught.append(exc)
            assert TOKEN not in repr(client)
            await client.aclose()
        return caught

    caught = asyncio.run(scenario())

    assert [type(e).__name__ for e in caught] == [
        "RateLimited",
        "CloudflareUnavailable",
        "CloudflareRefused",
        "AuthFailed",
    ]
    for exc in caught:
        text = "".join(traceback.format_exception(exc))
        assert exc.__cause__ is None
        assert exc.__context__ is None  # the SDK's exception (and its request) is not kept
        assert TOKEN not in text
        assert "wrong-token" not in text
