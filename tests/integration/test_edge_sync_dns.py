"""DNS-only reroutes through the real SDK against the emulator: switch, undo, refuse, roll back.

A user sees the grey cloud on exactly the records the reroute switched, the comment saying
why, and after the undo every record as it was; a record of another name, or one kept
DNS-only on purpose, is never touched.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.edge_fixtures import (
    API,
    NS,
    EdgeWorld,
    dns_only,
    key,
    read_timeout,
    route_spec,
)
from timeout_budget.edge import EdgeRefused
from timeout_budget.model.actions import RerouteTarget, RerouteVia

pytestmark = pytest.mark.integration

HOST = "export-direct.example.com"
TARGET = RerouteTarget(RerouteVia.DNS_ONLY, HOST)


def by_id(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in records}


def test_dns_only_switches_the_proxied_records_and_the_undo_restores_exactly_them(
    edge: EdgeWorld,
) -> None:
    zone_id = edge.emu.add_zone(plan="pro")
    a = edge.emu.add_dns_record(zone_id, HOST, "A", "192.0.2.10", proxied=True, comment="pool A")
    aaaa = edge.emu.add_dns_record(zone_id, HOST, "AAAA", "2001:db8::10", proxied=True)
    grey = edge.emu.add_dns_record(
        zone_id, HOST, "A", "192.0.2.11", ttl=300, comment="grey on purpose"
    )
    txt = edge.emu.add_dns_record(zone_id, HOST, "TXT", "verification")
    www = edge.emu.add_dns_record(zone_id, "www.example.com", "A", "192.0.2.1", proxied=True)
    route = route_spec(dns_only=HOST)

    async def scenario() -> list[Any]:
        await edge.sync(zone_id)
        failures_on = await edge.cycle_api(route, dns_only(HOST))
        during = by_id(edge.emu.dns_records(zone_id))
        rerouted = edge.registry.rerouted(NS, API, route)
        message = edge.registry.conditions(NS, API, route)[0].message
        failures_off = await edge.cycle_api(route, dns_only(HOST, on=False))
        return [failures_on, during, rerouted, message, failures_off]

    failures_on, during, rerouted, message, failures_off = edge.run(scenario)
    after = by_id(edge.emu.dns_records(zone_id))
    patched = [e.body["proxied"] for e in edge.emu.requests(method="PATCH")]

    assert failures_on == failures_off == {}
    assert rerouted == frozenset({TARGET})
    assert f"{HOST} is DNS-only" in message
    assert (during[a["id"]]["proxied"], during[aaaa["id"]]["proxied"]) == (False, False)
    assert during[a["id"]]["comment"] == "pool A [DNS-only: timeout-budget shop/api]"
    assert during[grey["id"]] == grey  # kept DNS-only by someone: untouched
    assert patched == [False, False, True, True]  # only the two records it switched
    assert (after[a["id"]]["proxied"], after[a["id"]]["comment"]) == (True, "pool A")
    assert (after[aaaa["id"]]["proxied"], after[aaaa["id"]]["comment"]) == (True, "")
    for untouched in (grey, txt, www):
        assert after[untouched["id"]] == untouched  # byte for byte, modified_on included
    assert edge.emu.effectively_proxied(zone_id, HOST) is True


def test_a_hostname_shared_with_another_route_is_refused(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="pro")
    edge.emu.add_dns_record(zone_id, HOST, "A", "192.0.2.10", proxied=True)
    route = route_spec(dns_only=HOST)
    other = route_spec(HOST, "/")  # served on that host, no DNS-only allowed
    routes = {API: route, key("site"): other}

    async def scenario() -> str:
        await edge.sync(zone_id)
        for name, spec in routes.items():
            edge.registry.observe(NS, name, spec)
        with pytest.raises(EdgeRefused) as refused:
            await edge.registry.apply(NS, API, route, [dns_only(HOST)])
        return str(refused.value)

    message = edge.run(scenario)
    patches = edge.emu.requests(method="PATCH")

    assert message == (
        f"{HOST} also serves TimeoutBudget shop/site, which does not allow DNS-only there: "
        "a DNS-only hostname must be dedicated"
    )
    assert patches == []


def test_a_failure_half_way_puts_the_switched_records_back(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="pro")
    first = edge.emu.add_dns_record(zone_id, HOST, "A", "192.0.2.10", proxied=True, comment="a")
    second = edge.emu.add_dns_record(zone_id, HOST, "AAAA", "2001:db8::10", proxied=True)
    route = route_spec(dns_only=HOST)
    # The emulator lists records ordered by type: A first, then AAAA.
    edge.emu.fail_next(
        1,
        status=500,
        method="PATCH",
        path_prefix=f"/zones/{zone_id}/dns_records/{second['id']}",
    )

    async def scenario() -> tuple[dict[str, str], frozenset[RerouteTarget]]:
        await edge.sync(zone_id)
        failures = await edge.cycle_api(route, dns_only(HOST))
        return failures, edge.registry.rerouted(NS, API, route)

    failures, rerouted = edge.run(scenario)
    after = by_id(edge.emu.dns_records(zone_id))

    assert "Cloudflare error 500" in failures[API]
    assert "the 1 record(s) already switched were put back" in failures[API]
    assert rerouted == frozenset()
    assert (after[first["id"]]["proxied"], after[first["id"]]["comment"]) == (True, "a")
    assert after[second["id"]]["proxied"] is True
    assert edge.emu.effectively_proxied(zone_id, HOST) is True


def test_finalize_restores_the_proxied_flag_and_removes_the_rule(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="enterprise")
    record = edge.emu.add_dns_record(zone_id, HOST, "CNAME", "lb.example.net", proxied=True)
    route = route_spec(required=300, dns_only=HOST)

    async def scenario() -> None:
        await edge.sync(zone_id)
        await edge.cycle_api(route, read_timeout(route, 301), dns_only(HOST))
        assert edge.emu.effectively_proxied(zone_id, HOST) is False
        assert len(edge.emu.rules(zone_id)) == 1
        await edge.registry.finalize_route(NS, API, route)

    edge.run(scenario)
    after = by_id(edge.emu.dns_records(zone_id))[record["id"]]
    rules = edge.emu.rules(zone_id)

    assert (after["proxied"], after["comment"]) == (True, "")
    assert rules == []


def test_records_already_dns_only_by_someone_else_are_refused_with_a_reason(
    edge: EdgeWorld,
) -> None:
    zone_id = edge.emu.add_zone(plan="pro")
    edge.emu.add_dns_record(zone_id, HOST, "A", "192.0.2.10", proxied=False)
    route = route_spec(dns_only=HOST)

    async def scenario() -> dict[str, str]:
        await edge.sync(zone_id)
        return await edge.cycle_api(route, dns_only(HOST))

    failures = edge.run(scenario)

    assert "already DNS-only and the operator did not make it so" in failures[API]
