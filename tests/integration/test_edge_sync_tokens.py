"""Tokens and limits as Cloudflare has them, through the real SDK against the emulator.

A token lacking one permission stops only the feature needing it, and the CloudflareZone
says which permission; a malformed token is an authentication failure; all of the
operator's tokens spend one budget; a 429 without Retry-After holds five minutes; and
Cloudflare's own count (the ``Ratelimit`` header) stops the operator before a 429.
"""

from __future__ import annotations

from typing import Any

import cloudflare
import pytest

from sandbox.cloudflare_emulator.tokens import ALL_PERMISSIONS, ZONE_SETTINGS_EDIT
from tests.integration.edge_fixtures import (
    NS,
    TOKEN,
    ZONE,
    Clocks,
    condition,
    cycle,
    dns_only,
    emulated,
    key,
    registry_for,
    route_spec,
    run,
    zone_spec,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_ambient_credentials")]

HOST = "export-direct.example.com"
LIMITED = "L" * 40  # a well-formed token the emulator grants only some permissions


def test_without_zone_settings_edit_only_the_zone_timeout_is_not_enforced() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        emu.add_token(LIMITED, ALL_PERMISSIONS - {ZONE_SETTINGS_EDIT})
        zone_id = emu.add_zone(plan="enterprise")
        emu.add_dns_record(zone_id, HOST, "A", "192.0.2.10", proxied=True)
        registry = registry_for(emu, clocks)
        spec = zone_spec(zone_id, proxyReadTimeoutSeconds=300)
        routes = {key("api"): route_spec(dns_only=HOST)}

        async def scenario() -> list[Any]:
            status = await registry.reconcile_zone(NS, ZONE, spec, LIMITED)
            failures = await cycle(registry, routes, {key("api"): [dns_only(HOST)]})
            return [status, failures]

        status, failures = run(registry, scenario)
        proxied = emu.effectively_proxied(zone_id, HOST)

    synced = condition(status, "EdgeSynced")
    enforced = condition(status, "ProxyReadTimeoutEnforced")
    assert (synced["status"], synced["reason"]) == ("False", "PermissionMissing")
    assert (
        "lacks Zone Settings Edit (stops enforcing spec.proxyReadTimeoutSeconds and "
        "spec.raiseProxyReadTimeout)" in (synced["message"])
    )
    assert (enforced["status"], enforced["reason"]) == ("False", "PermissionMissing")
    assert status["effectiveProxyReadTimeoutSeconds"] == 100
    assert failures == {}  # DNS-only still works
    assert not proxied


def test_without_dns_edit_the_reroute_fails_naming_it_and_is_not_retried_at_once() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        emu.add_token(LIMITED, ALL_PERMISSIONS - {"DNS Edit"})
        zone_id = emu.add_zone(plan="pro")
        emu.add_dns_record(zone_id, HOST, "A", "192.0.2.10", proxied=True)
        registry = registry_for(emu, clocks)
        routes = {key("api"): route_spec(dns_only=HOST)}
        wanted = {key("api"): [dns_only(HOST)]}

        async def scenario() -> list[Any]:
            first_status = await registry.reconcile_zone(NS, ZONE, zone_spec(zone_id), LIMITED)
            first = await cycle(registry, routes, wanted)
            patches = len(emu.requests(method="PATCH"))
            clocks.advance(15)
            second = await cycle(registry, routes, wanted)
            status = await registry.reconcile_zone(NS, ZONE, zone_spec(zone_id), LIMITED)
            return [first_status, first, patches, second, status]

        first_status, first, patches, second, status = run(registry, scenario)
        patches_after = len(emu.requests(method="PATCH"))

    assert condition(first_status, "EdgeSynced")["status"] == "True"
    assert "it needs the permission DNS Edit" in first[key("api")]
    assert "tried again at" in second[key("api")]
    assert patches == patches_after == 1
    assert "lacks DNS Edit (stops DNS-only reroutes)" in condition(status, "EdgeSynced")["message"]


def test_a_malformed_token_is_an_authentication_failure() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        zone_id = emu.add_zone(plan="pro")
        registry = registry_for(emu, clocks)

        async def scenario() -> dict[str, Any]:
            return await registry.reconcile_zone(NS, ZONE, zone_spec(zone_id), "not a token")

        status = run(registry, scenario)
        codes = [e.error_codes for e in emu.requests()]

    synced = condition(status, "EdgeSynced")
    assert (synced["status"], synced["reason"]) == ("False", "AuthFailed")
    assert "rejected the API token as malformed" in synced["message"]
    assert codes == [(6003,)]


def test_every_token_of_the_operator_spends_one_budget() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        first, second = emu.add_zone(plan="pro"), emu.add_zone(plan="pro")
        registry = registry_for(emu, clocks, request_budget_cap=10)

        async def scenario() -> list[dict[str, Any]]:
            one = await registry.reconcile_zone(NS, "one", zone_spec(first), TOKEN)
            two = await registry.reconcile_zone(NS, "two", zone_spec(second), "another-token")
            return [one, two]

        one, two = run(registry, scenario)

    assert one["requestsRemaining"] == 8
    assert two["requestsRemaining"] == 6  # the other token's requests count too


def test_a_429_without_retry_after_holds_every_zone_for_five_minutes() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        first, second = emu.add_zone(plan="pro"), emu.add_zone(plan="pro")
        registry = registry_for(emu, clocks)

        async def scenario() -> list[Any]:
            emu.fail_next(1, status=429, retry_after=None)
            limited = await registry.reconcile_zone(NS, "one", zone_spec(first), TOKEN)
            sent = len(emu.requests())
            clocks.advance(290)
            other = await registry.reconcile_zone(NS, "two", zone_spec(second), "another-token")
            quiet = len(emu.requests()) == sent
            clocks.advance(10)
            again = await registry.reconcile_zone(NS, "two", zone_spec(second), "another-token")
            return [limited, quiet, other, again]

        limited, quiet, other, again = run(registry, scenario)

    assert "retry after 300s" in condition(limited, "EdgeSynced")["message"]
    assert quiet  # the other zone, with another token, sent nothing either
    assert condition(other, "EdgeSynced")["reason"] == "RateLimited"
    assert condition(again, "EdgeSynced")["status"] == "True"


def test_cloudflares_ratelimit_header_stops_the_operator_before_a_429() -> None:
    clocks = Clocks()
    with emulated(clocks, rate_limit=6) as emu:
        zone_id = emu.add_zone(plan="pro")
        registry = registry_for(emu, clocks)
        spec = zone_spec(zone_id)

        async def scenario() -> dict[str, Any]:
            with cloudflare.Cloudflare(api_token=TOKEN, base_url=emu.base_url) as dashboard:
                for _ in range(4):  # someone else, same user, spends most of the window
                    dashboard.zones.settings.get("proxy_read_timeout", zone_id=zone_id)
            await registry.reconcile_zone(NS, ZONE, spec, TOKEN)  # 2 requests: r=0
            emu.clear_requests()
            clocks.advance(60)
            return await registry.reconcile_zone(NS, ZONE, spec, TOKEN)

        status = run(registry, scenario)
        sent = emu.requests()

    assert sent == []  # no 429 provoked: the header said nothing was left
    synced = condition(status, "EdgeSynced")
    assert synced["reason"] == "RateLimited"
    assert "rate-limit header says no requests are left" in synced["message"]
