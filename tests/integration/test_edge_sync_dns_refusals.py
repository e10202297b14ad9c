"""DNS-only where it cannot work is refused, through the real SDK against the emulator.

A user who asks for a DNS-only hostname that is a Cloudflare Tunnel, or a CNAME to a name
the zone proxies, gets a reason naming what to change, and the hostname keeps working;
a person may edit the record's comment while it is grey, and the undo keeps their words;
the comment limit is the zone plan's.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.edge_fixtures import (
    NS,
    TOKEN,
    ZONE,
    Clocks,
    cycle,
    dns_only,
    emulated,
    key,
    registry_for,
    route_spec,
    run,
    zone_spec,
)
from timeout_budget.model.actions import RerouteTarget, RerouteVia

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_ambient_credentials")]

HOST = "export-direct.example.com"
TUNNEL = "6ff42ae2-765d-4adf-8112-31c55c1551ef.cfargotunnel.com"


def test_a_tunnel_hostname_is_refused_and_keeps_working() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        zone_id = emu.add_zone(plan="pro")
        emu.add_dns_record(zone_id, HOST, "CNAME", TUNNEL, proxied=True)
        registry = registry_for(emu, clocks)
        routes = {key("api"): route_spec(dns_only=HOST)}

        async def scenario() -> dict[str, str]:
            await registry.reconcile_zone(NS, ZONE, zone_spec(zone_id), TOKEN)
            return await cycle(registry, routes, {key("api"): [dns_only(HOST)]})

        failures = run(registry, scenario)
        patches = emu.requests(method="PATCH")
        reachable = emu.reachable(zone_id, HOST)

    assert "CNAME to Cloudflare Tunnel" in failures[key("api")]
    assert "the hostname goes down" in failures[key("api")]
    assert patches == []
    assert reachable


def test_the_emulator_takes_a_grey_tunnel_down() -> None:
    with emulated() as emu:
        zone_id = emu.add_zone(plan="pro")
        emu.add_dns_record(zone_id, HOST, "CNAME", TUNNEL, proxied=False)
        assert not emu.reachable(zone_id, HOST)


def test_a_cname_to_a_proxied_name_is_refused_and_never_reported_dns_only() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        zone_id = emu.add_zone(plan="pro")
        emu.add_dns_record(zone_id, HOST, "CNAME", "lb.example.com", proxied=True)
        lb = emu.add_dns_record(zone_id, "lb.example.com", "A", "192.0.2.10", proxied=True)
        registry = registry_for(emu, clocks)
        route = route_spec(dns_only=HOST)
        routes = {key("api"): route}

        async def scenario() -> list[Any]:
            await registry.reconcile_zone(NS, ZONE, zone_spec(zone_id), TOKEN)
            refused = await cycle(registry, routes, {key("api"): [dns_only(HOST)]})
            with emu.store.lock:  # the user makes the target DNS-only: now it can work
                emu.store.zones[zone_id].dns_records[lb["id"]]["proxied"] = False
            done = await cycle(registry, routes, {key("api"): [dns_only(HOST)]})
            rerouted = registry.rerouted(NS, key("api"), route)
            with emu.store.lock:  # ... and proxies it again later
                emu.store.zones[zone_id].dns_records[lb["id"]]["proxied"] = True
            clocks.advance(400)
            await registry.reconcile_zone(NS, ZONE, zone_spec(zone_id), TOKEN)
            after = registry.rerouted(NS, key("api"), route)
            message = registry.conditions(NS, key("api"), route)[0].message
            return [refused, done, rerouted, after, message]

        refused, done, rerouted, after, message = run(registry, scenario)
        proxied_now = emu.effectively_proxied(zone_id, HOST)

    assert "is a CNAME to lb.example.com" in refused[key("api")]
    assert "make lb.example.com DNS-only" in refused[key("api")]
    assert done == {}
    assert rerouted == frozenset({RerouteTarget(RerouteVia.DNS_ONLY, HOST)})
    assert after == frozenset()  # Cloudflare proxies it again through the chain
    assert f"{HOST} is proxied" in message
    assert proxied_now


def test_a_person_editing_the_comment_keeps_the_marker_and_their_words() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        zone_id = emu.add_zone(plan="pro")
        record = emu.add_dns_record(zone_id, HOST, "A", "192.0.2.10", proxied=True, comment="a")
        registry = registry_for(emu, clocks)
        route = route_spec(dns_only=HOST)
        routes = {key("api"): route}

        async def scenario() -> list[Any]:
            await registry.reconcile_zone(NS, ZONE, zone_spec(zone_id), TOKEN)
            await cycle(registry, routes, {key("api"): [dns_only(HOST)]})
            with emu.store.lock:
                stored = emu.store.zones[zone_id].dns_records[record["id"]]
                stored["comment"] = stored["comment"] + " (see INC-42)"
            clocks.advance(400)
            await registry.reconcile_zone(NS, ZONE, zone_spec(zone_id), TOKEN)
            still = registry.rerouted(NS, key("api"), route)
            undone = await cycle(registry, routes, {key("api"): [dns_only(HOST, on=False)]})
            return [still, undone]

        still, undone = run(registry, scenario)
        after = next(r for r in emu.dns_records(zone_id) if r["id"] == record["id"])

    assert len(still) == 1  # still recognised as the route's DNS-only
    assert undone == {}
    assert (after["proxied"], after["comment"]) == (True, "a (see INC-42)")


@pytest.mark.parametrize(("plan", "refused"), [("free", True), ("business", False)])
def test_the_comment_limit_is_the_plans(plan: str, refused: bool) -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        zone_id = emu.add_zone(plan=plan)
        emu.add_dns_record(zone_id, HOST, "A", "192.0.2.10", proxied=True, comment="x" * 150)
        registry = registry_for(emu, clocks)
        routes = {key("api"): route_spec(dns_only=HOST)}

        async def scenario() -> dict[str, str]:
            await registry.reconcile_zone(NS, ZONE, zone_spec(zone_id), TOKEN)
            return await cycle(registry, routes, {key("api"): [dns_only(HOST)]})

        failures = run(registry, scenario)
        plan_reads = [e for e in emu.requests(method="GET") if e.path.endswith(zone_id)]
        proxied = emu.effectively_proxied(zone_id, HOST)

    assert len(plan_reads) == 1  # the plan is read only because 100 characters do not fit
    if refused:
        assert "Cloudflare allows 100 characters" in failures[key("api")]
        assert proxied
    else:
        assert failures == {}
        assert not proxied
