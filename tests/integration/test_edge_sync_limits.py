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
    NS,
    TOKEN,
    ZONE,
    Clocks,
    MetricsRecorder,
    cache_rule,
    condition,
    cycle,
    emulated,
    key,
    read_timeout,
    registry_for,
    route_spec,
    run,
    zone_spec,
)
from timeout_budget.clients.cloudflare import CloudflareClient
from timeout_budget.clients.cloudflare_errors import CloudflareError
from timeout_budget.clients.cloudflare_values import ApiToken
from timeout_budget.clients.request_budget import RequestBudget
from timeout_budget.edge import ZoneNotReady

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_ambient_credentials")]


def test_429_is_honoured_nothing_is_lost_and_the_next_flush_succeeds() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        zone_id = emu.add_zone(plan="enterprise")
        emu.add_rules(zone_id, [cache_rule("other", "other.example.com")])
        before = emu.rules(zone_id)
        registry = registry_for(emu, clocks)
        route = route_spec(required=300)
        routes, wanted = {key("api"): route}, {key("api"): [read_timeout(route, 301)]}

        async def scenario() -> list[Any]:
            await registry.reconcile_zone(NS, ZONE, zone_spec(zone_id), TOKEN)
            emu.fail_next(1, status=429, retry_after=30, method="GET")
            limited = await cycle(registry, routes, wanted)
            during = emu.rules(zone_id)
            sent = len(emu.requests())
            clocks.advance(15)  # the next engine cycle, still inside Retry-After
            held = await cycle(registry, routes, wanted)
            quiet = len(emu.requests()) == sent
            clocks.advance(15)
            done = await cycle(registry, routes, wanted)
            return [limited, during, held, quiet, done]

        limited, during, held, quiet, done = run(registry, scenario)
        after = emu.rules(zone_id)

    assert "Cloudflare rate limit (429): retry after 30s" in limited[key("api")]
    assert during == before  # nothing lost
    assert "holding back until" in held[key("api")]
    assert quiet  # not a single request while Cloudflare said wait
    assert done == {}
    assert after[1] == before[0]  # the operator's rule goes in front; the user's stays
    assert [r["ref"] for r in after] == ["tbo_shop_api", "other"]


def test_a_429_on_one_rule_write_stops_the_zones_other_writes() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        zone_id = emu.add_zone(plan="enterprise")
        emu.add_rules(zone_id, [cache_rule("other", "other.example.com")])
        registry = registry_for(emu, clocks)
        names = ("a", "b", "c")
        routes = {key(n): route_spec(f"{n}.example.com", required=300) for n in names}
        wanted = {k: [read_timeout(s, 301)] for k, s in routes.items()}

        async def scenario() -> list[Any]:
            await registry.reconcile_zone(NS, ZONE, zone_spec(zone_id), TOKEN)
            emu.clear_requests()
            # The first of the three rule creates is answered 429: the other two must not
            # be sent (nor retried by the SDK) before Retry-After has passed.
            emu.fail_next(
                1, status=429, retry_after=30, method="POST", path_prefix=f"/zones/{zone_id}/"
            )
            limited = await cycle(registry, routes, wanted)
            sent = [(e.method, e.status) for e in emu.requests()]
            clocks.advance(15)
            held = await cycle(registry, routes, wanted)
            quiet = len(emu.requests()) == len(sent)
            clocks.advance(15)
            return [limited, sent, held, quiet, await cycle(registry, routes, wanted)]

        limited, sent, held, quiet, done = run(registry, scenario)
        after = emu.rules(zone_id)

    assert sent == [("GET", 200), ("POST", 429)]  # the read, the refused create; no more
    assert set(limited) == set(routes)
    assert all("Cloudflare rate limit (429): retry after 30s" in m for m in limited.values())
    assert all("holding back until" in m for m in held.values())
    assert quiet
    assert done == {}
    assert sorted(r["ref"] for r in after[:3]) == ["tbo_shop_a", "tbo_shop_b", "tbo_shop_c"]
    assert after[3]["ref"] == "other"


def test_500_is_reported_backed_off_and_then_synced() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        zone_id = emu.add_zone(plan="enterprise")
        registry = registry_for(emu, clocks)
        route = route_spec(required=300)
        routes, wanted = {key("api"): route}, {key("api"): [read_timeout(route, 301)]}

        async def scenario() -> list[Any]:
            await registry.reconcile_zone(NS, ZONE, zone_spec(zone_id), TOKEN)
            # The zone has no entry point yet: the operator's write creates it.
            emu.fail_next(1, status=500, method="POST", path_prefix=f"/zones/{zone_id}/rulesets")
            failed = await cycle(registry, routes, wanted)
            condition_after = registry.conditions(NS, key("api"), route)[0]
            clocks.advance(15)
            return [failed, condition_after, await cycle(registry, routes, wanted)]

        failed, synced_condition, done = run(registry, scenario)
        found = emu.rules(zone_id)

    assert "Cloudflare error 500 10001: Internal server error" in failed[key("api")]
    assert synced_condition.reason == "SyncFailed"
    assert "(retried next cycle)" in synced_condition.message
    assert done == {}
    assert [r["action_parameters"]["read_timeout"] for r in found] == [301]


def test_a_hanging_request_times_out_and_is_retried() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        zone_id = emu.add_zone(plan="enterprise")
        registry = registry_for(emu, clocks, request_timeout_seconds=0.5)
        route = route_spec(required=300)
        routes, wanted = {key("api"): route}, {key("api"): [read_timeout(route, 301)]}

        async def scenario() -> list[dict[str, str]]:
            await registry.reconcile_zone(NS, ZONE, zone_spec(zone_id), TOKEN)
            emu.hang_next(
                1, hold_seconds=5, method="POST", path_prefix=f"/zones/{zone_id}/rulesets"
            )
            failed = await cycle(registry, routes, wanted)
            clocks.advance(15)
            return [failed, await cycle(registry, routes, wanted)]

        failed, done = run(registry, scenario)

    assert "Cloudflare did not answer in time" in failed[key("api")]
    assert done == {}


def test_a_spent_budget_refuses_without_sending() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        zone_id = emu.add_zone(plan="enterprise")
        metrics = MetricsRecorder()
        registry = registry_for(emu, clocks, metrics=metrics)
        spec = zone_spec(zone_id, apiRequestBudget=10)
        route = route_spec(required=300)
        routes = {key("api"): route}

        async def scenario() -> tuple[list[dict[str, str]], dict[str, Any]]:
            await registry.reconcile_zone(NS, ZONE, spec, TOKEN)  # 2 requests
            outcomes = []
            # 2 requests each: a fresh GET of the entry point, then one write (the first
            # creates the entry point holding the rule, the others edit the rule)
            for seconds in (301, 302, 303, 304, 305):
                clocks.advance(1)
                outcomes.append(
                    await cycle(registry, routes, {key("api"): [read_timeout(route, seconds)]})
                )
            status = await registry.reconcile_zone(NS, ZONE, spec, TOKEN)
            return outcomes, status

        outcomes, status = run(registry, scenario)
        sent = len(emu.requests())

    assert sent == 10
    assert outcomes[:4] == [{}, {}, {}, {}]
    assert "request budget (10 per 300s for this zone) is spent" in outcomes[4][key("api")]
    assert status["requestsRemaining"] == 0
    assert condition(status, "EdgeSynced")["reason"] == "BudgetExhausted"
    assert len(metrics.requests) == sent  # every request sent was counted
    assert ("create_cache_ruleset", "ok") in metrics.requests
    assert metrics.requests.count(("edit_cache_rule", "ok")) == 3
    assert metrics.not_sent == ["budget_spent", "budget_spent"]  # the cycle, the re-read
    assert metrics.budgets[(NS, ZONE)] == (0, 10)
    assert metrics.synced[(NS, ZONE)] is False


def test_a_429_storm_costs_a_bounded_number_of_requests_and_ends_synced() -> None:
    clocks = Clocks()
    with emulated(clocks, rate_limit=20) as emu:  # Cloudflare's limit per 300 s, shared
        zone_id = emu.add_zone(plan="enterprise")
        registry = registry_for(emu, clocks)
        names = [f"r{i}" for i in range(5)]
        routes = {key(n): route_spec(f"{n}.example.com", required=300) for n in names}
        wanted = {k: [read_timeout(s, 301)] for k, s in routes.items()}

        async def scenario() -> list[dict[str, str]]:
            await registry.reconcile_zone(NS, ZONE, zone_spec(zone_id), TOKEN)
            with cloudflare.Cloudflare(api_token=TOKEN, base_url=emu.base_url) as dashboard:
                for _ in range(18):  # someone else spends the rest of the window
                    dashboard.zones.settings.get("proxy_read_timeout", zone_id=zone_id)
            emu.clear_requests()
            outcomes = []
            for _ in range(24):  # 6 minutes of 15 s cycles, every route wanting its rule
                outcomes.append(await cycle(registry, routes, wanted))
                clocks.advance(15)
            return outcomes

        outcomes = run(registry, scenario)
        statuses = [e.status for e in emu.requests()]
        found = emu.rules(zone_id)

    # One refused read; then the read (no entry point), the entry point created with the
    # first route's rule, and one create per other route.
    assert statuses == [429, 404, 200, 200, 200, 200, 200]
    assert all(len(o) == 5 for o in outcomes[:19])  # reported each cycle while held back
    assert outcomes[-1] == {}
    assert len(found) == 5


def test_a_rejected_token_stops_requests_until_the_secret_changes() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        zone_id = emu.add_zone(plan="enterprise")
        registry = registry_for(emu, clocks)
        spec = zone_spec(zone_id)
        route = route_spec(required=300)

        async def scenario() -> list[Any]:
            rejected = await registry.reconcile_zone(NS, ZONE, spec, "wrong-token")
            again = await registry.reconcile_zone(NS, ZONE, spec, "wrong-token")
            sent = len(emu.requests())
            registry.observe(NS, key("api"), route)
            with pytest.raises(ZoneNotReady):
                await registry.apply(NS, key("api"), route, [read_timeout(route, 301)])
            fixed = await registry.reconcile_zone(NS, ZONE, spec, TOKEN)
            return [rejected, again, sent, fixed]

        rejected, again, sent, fixed = run(registry, scenario)

    synced = condition(rejected, "EdgeSynced")
    assert (synced["status"], synced["reason"]) == ("False", "AuthFailed")
    assert "rejected the API token" in synced["message"]
    assert condition(again, "EdgeSynced")["reason"] == "AuthFailed"
    assert sent == 1  # the second reconcile sent nothing
    assert condition(fixed, "EdgeSynced")["status"] == "True"


def test_the_token_appears_in_no_log_status_condition_or_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    clocks = Clocks()
    texts: list[str] = []
    with emulated(clocks) as emu:
        zone_id = emu.add_zone(plan="enterprise")
        emu.add_dns_record(zone_id, "direct.example.com", "A", "192.0.2.1", proxied=True)
        registry = registry_for(emu, clocks, request_timeout_seconds=0.5)
        spec = zone_spec(zone_id, proxyReadTimeoutSeconds=300)
        route = route_spec(required=300, dns_only="direct.example.com")
        routes = {key("api"): route}
        wanted = {key("api"): [read_timeout(route, 301)]}

        async def scenario() -> None:
            texts.append(json.dumps(await registry.reconcile_zone(NS, ZONE, spec, "wrong-token")))
            texts.append(json.dumps(await registry.reconcile_zone(NS, ZONE, spec, TOKEN)))
            for fault in ({"status": 429}, {"status": 500}, {"status": 400}, None):
                if fault is not None:
                    emu.fail_next(1, **fault)
                failures = await cycle(registry, routes, wanted)
                texts.extend(failures.values())
                texts.extend(repr(c) for c in registry.conditions(NS, key("api"), route))
                clocks.advance(60)
            emu.hang_next(1, hold_seconds=3)
            texts.append(json.dumps(await registry.reconcile_zone(NS, ZONE, spec, TOKEN)))
            texts.append(repr(registry) + repr(registry.__dict__))

        run(registry, scenario)

    captured = caplog.text + "\n".join(texts)
    assert "wrong-token" not in captured
    assert TOKEN not in captured
    assert "rate limit" in captured  # the faults were seen
    assert "did not answer in time" in captured


def test_client_errors_carry_neither_the_token_nor_the_sdks_request() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        zone_id = emu.add_zone(plan="pro")

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
                    budget=RequestBudget(clock=clocks.registry),
                    base_url=emu.base_url,
                    timeout_seconds=2,
                )
                if fault is not None:
                    emu.fail_next(1, **fault)
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
