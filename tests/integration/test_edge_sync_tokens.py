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
    API,
    NS,
    TOKEN,
    EdgeWorld,
    condition,
    dns_only,
    edge_world,
    route_spec,
    zone_spec,
)

pytestmark = pytest.mark.integration

HOST = "export-direct.example.com"
LIMITED = "L" * 40  # a well-formed token the emulator grants only some permissions


def test_without_zone_settings_edit_only_the_zone_timeout_is_not_enforced(edge: EdgeWorld) -> None:
    edge.emu.add_token(LIMITED, ALL_PERMISSIONS - {ZONE_SETTINGS_EDIT})
    zone_id = edge.emu.add_zone(plan="enterprise")
    edge.emu.add_dns_record(zone_id, HOST, "A", "192.0.2.10", proxied=True)
    spec = zone_spec(zone_id, proxyReadTimeoutSeconds=300)
    route = route_spec(dns_only=HOST)

    async def scenario() -> list[Any]:
        status = await edge.sync(spec, LIMITED)
        failures = await edge.cycle_api(route, dns_only(HOST))
        return [status, failures]

    status, failures = edge.run(scenario)
    proxied = edge.emu.effectively_proxied(zone_id, HOST)

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


def test_without_dns_edit_the_reroute_fails_naming_it_and_is_not_retried_at_once(
    edge: EdgeWorld,
) -> None:
    edge.emu.add_token(LIMITED, ALL_PERMISSIONS - {"DNS Edit"})
    zone_id = edge.emu.add_zone(plan="pro")
    edge.emu.add_dns_record(zone_id, HOST, "A", "192.0.2.10", proxied=True)
    route = route_spec(dns_only=HOST)

    async def scenario() -> list[Any]:
        first_status = await edge.sync(zone_id, LIMITED)
        first = await edge.cycle_api(route, dns_only(HOST))
        patches = len(edge.emu.requests(method="PATCH"))
        edge.clocks.advance(15)
        second = await edge.cycle_api(route, dns_only(HOST))
        status = await edge.sync(zone_id, LIMITED)
        return [first_status, first, patches, second, status]

    first_status, first, patches, second, status = edge.run(scenario)
    patches_after = len(edge.emu.requests(method="PATCH"))

    assert condition(first_status, "EdgeSynced")["status"] == "True"
    assert "it needs the permission DNS Edit" in first[API]
    assert "tried again at" in second[API]
    assert patches == patches_after == 1
    assert "lacks DNS Edit (stops DNS-only reroutes)" in condition(status, "EdgeSynced")["message"]


def test_a_malformed_token_is_an_authentication_failure(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="pro")

    async def scenario() -> dict[str, Any]:
        return await edge.sync(zone_id, "not a token")

    status = edge.run(scenario)
    codes = [e.error_codes for e in edge.emu.requests()]

    synced = condition(status, "EdgeSynced")
    assert (synced["status"], synced["reason"]) == ("False", "AuthFailed")
    assert "rejected the API token as malformed" in synced["message"]
    assert codes == [(6003,)]


def test_every_token_of_the_operator_spends_one_budget(edge: EdgeWorld) -> None:
    first, second = edge.emu.add_zone(plan="pro"), edge.emu.add_zone(plan="pro")
    edge.new_registry(request_budget_cap=10)

    async def scenario() -> list[dict[str, Any]]:
        one = await edge.registry.reconcile_zone(NS, "one", zone_spec(first), TOKEN)
        two = await edge.registry.reconcile_zone(NS, "two", zone_spec(second), "another-token")
        return [one, two]

    one, two = edge.run(scenario)

    assert one["requestsRemaining"] == 8
    assert two["requestsRemaining"] == 6  # the other token's requests count too


def test_a_429_without_retry_after_holds_every_zone_for_five_minutes(edge: EdgeWorld) -> None:
    first, second = edge.emu.add_zone(plan="pro"), edge.emu.add_zone(plan="pro")

    async def scenario() -> list[Any]:
        edge.emu.fail_next(1, status=429, retry_after=None)
        limited = await edge.registry.reconcile_zone(NS, "one", zone_spec(first), TOKEN)
        sent = len(edge.emu.requests())
        edge.clocks.advance(290)
        other = await edge.registry.reconcile_zone(NS, "two", zone_spec(second), "another-token")
        quiet = len(edge.emu.requests()) == sent
        edge.clocks.advance(10)
        again = await edge.registry.reconcile_zone(NS, "two", zone_spec(second), "another-token")
        return [limited, quiet, other, again]

    limited, quiet, other, again = edge.run(scenario)

    assert "retry after 300s" in condition(limited, "EdgeSynced")["message"]
    assert quiet  # the other zone, with another token, sent nothing either
    assert condition(other, "EdgeSynced")["reason"] == "RateLimited"
    assert condition(again, "EdgeSynced")["status"] == "True"


@pytest.mark.usefixtures("no_ambient_credentials")
def test_cloudflares_ratelimit_header_stops_the_operator_before_a_429() -> None:
    with edge_world(rate_limit=6) as edge:
        zone_id = edge.emu.add_zone(plan="pro")
        spec = zone_spec(zone_id)

        async def scenario() -> dict[str, Any]:
            with cloudflare.Cloudflare(api_token=TOKEN, base_url=edge.emu.base_url) as dashboard:
                for _ in range(4):  # someone else, same user, spends most of the window
                    dashboard.zones.settings.get("proxy_read_timeout", zone_id=zone_id)
            await edge.sync(spec)  # 2 requests: r=0
            edge.emu.clear_requests()
            edge.clocks.advance(60)
            return await edge.sync(spec)

        status = edge.run(scenario)
        sent = edge.emu.requests()

    assert sent == []  # no 429 provoked: the header said nothing was left
    synced = condition(status, "EdgeSynced")
    assert synced["reason"] == "RateLimited"
    assert "rate-limit header says no requests are left" in synced["message"]
