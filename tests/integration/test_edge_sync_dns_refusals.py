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
    API,
    NS,
    EdgeWorld,
    dns_only,
    route_spec,
)
from timeout_budget.model.actions import RerouteTarget, RerouteVia

pytestmark = pytest.mark.integration

HOST = "export-direct.example.com"
TUNNEL = "6ff42ae2-765d-4adf-8112-31c55c1551ef.cfargotunnel.com"


def test_a_tunnel_hostname_is_refused_and_keeps_working(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="pro")
    edge.emu.add_dns_record(zone_id, HOST, "CNAME", TUNNEL, proxied=True)
    route = route_spec(dns_only=HOST)

    async def scenario() -> dict[str, str]:
        await edge.sync(zone_id)
        return await edge.cycle_api(route, dns_only(HOST))

    failures = edge.run(scenario)
    patches = edge.emu.requests(method="PATCH")
    reachable = edge.emu.reachable(zone_id, HOST)

    assert "CNAME to Cloudflare Tunnel" in failures[API]
    assert "the hostname goes down" in failures[API]
    assert patches == []
    assert reachable


def test_the_emulator_takes_a_grey_tunnel_down(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="pro")
    edge.emu.add_dns_record(zone_id, HOST, "CNAME", TUNNEL, proxied=False)
    assert not edge.emu.reachable(zone_id, HOST)


def test_a_cname_to_a_proxied_name_is_refused_and_never_reported_dns_only(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="pro")
    edge.emu.add_dns_record(zone_id, HOST, "CNAME", "lb.example.com", proxied=True)
    lb = edge.emu.add_dns_record(zone_id, "lb.example.com", "A", "192.0.2.10", proxied=True)
    route = route_spec(dns_only=HOST)

    async def scenario() -> list[Any]:
        await edge.sync(zone_id)
        refused = await edge.cycle_api(route, dns_only(HOST))
        with edge.emu.store.lock:  # the user makes the target DNS-only: now it can work
            edge.emu.store.zones[zone_id].dns_records[lb["id"]]["proxied"] = False
        done = await edge.cycle_api(route, dns_only(HOST))
        rerouted = edge.registry.rerouted(NS, API, route)
        with edge.emu.store.lock:  # ... and proxies it again later
            edge.emu.store.zones[zone_id].dns_records[lb["id"]]["proxied"] = True
        edge.clocks.advance(400)
        await edge.sync(zone_id)
        after = edge.registry.rerouted(NS, API, route)
        message = edge.registry.conditions(NS, API, route)[0].message
        return [refused, done, rerouted, after, message]

    refused, done, rerouted, after, message = edge.run(scenario)
    proxied_now = edge.emu.effectively_proxied(zone_id, HOST)

    assert "is a CNAME to lb.example.com" in refused[API]
    assert "make lb.example.com DNS-only" in refused[API]
    assert done == {}
    assert rerouted == frozenset({RerouteTarget(RerouteVia.DNS_ONLY, HOST)})
    assert after == frozenset()  # Cloudflare proxies it again through the chain
    assert f"{HOST} is proxied" in message
    assert proxied_now


def test_a_person_editing_the_comment_keeps_the_marker_and_their_words(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="pro")
    record = edge.emu.add_dns_record(zone_id, HOST, "A", "192.0.2.10", proxied=True, comment="a")
    route = route_spec(dns_only=HOST)

    async def scenario() -> list[Any]:
        await edge.sync(zone_id)
        await edge.cycle_api(route, dns_only(HOST))
        with edge.emu.store.lock:
            stored = edge.emu.store.zones[zone_id].dns_records[record["id"]]
            stored["comment"] = stored["comment"] + " (see INC-42)"
        edge.clocks.advance(400)
        await edge.sync(zone_id)
        still = edge.registry.rerouted(NS, API, route)
        undone = await edge.cycle_api(route, dns_only(HOST, on=False))
        return [still, undone]

    still, undone = edge.run(scenario)
    after = next(r for r in edge.emu.dns_records(zone_id) if r["id"] == record["id"])

    assert len(still) == 1  # still recognised as the route's DNS-only
    assert undone == {}
    assert (after["proxied"], after["comment"]) == (True, "a (see INC-42)")


@pytest.mark.parametrize(("plan", "refused"), [("free", True), ("business", False)])
def test_the_comment_limit_is_the_plans(plan: str, refused: bool, edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan=plan)
    edge.emu.add_dns_record(zone_id, HOST, "A", "192.0.2.10", proxied=True, comment="x" * 150)
    route = route_spec(dns_only=HOST)

    async def scenario() -> dict[str, str]:
        await edge.sync(zone_id)
        return await edge.cycle_api(route, dns_only(HOST))

    failures = edge.run(scenario)
    plan_reads = [e for e in edge.emu.requests(method="GET") if e.path.endswith(zone_id)]
    proxied = edge.emu.effectively_proxied(zone_id, HOST)

    assert len(plan_reads) == 1  # the plan is read only because 100 characters do not fit
    if refused:
        assert "Cloudflare allows 100 characters" in failures[API]
        assert proxied
    else:
        assert failures == {}
        assert not proxied
