"""DNS-only reroutes through the real SDK against the emulator: switch, undo, refuse, roll back.

A user sees the grey cloud on exactly the records the reroute switched, the comment saying
why, and after the undo every record as it was; a record of another name, or one kept
DNS-only on purpose, is never touched.
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
    read_timeout,
    registry_for,
    route_spec,
    run,
    zone_spec,
)
from timeout_budget.edge import EdgeRefused
from timeout_budget.model.actions import RerouteTarget, RerouteVia

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_ambient_credentials")]

HOST = "export-direct.example.com"
TARGET = RerouteTarget(RerouteVia.DNS_ONLY, HOST)


def by_id(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in records}


def test_dns_only_switches_the_proxied_records_and_the_undo_restores_exactly_them() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        zone_id = emu.add_zone(plan="pro")
        a = emu.add_dns_record(zone_id, HOST, "A", "192.0.2.10", proxied=True, comment="pool A")
        aaaa = emu.add_dns_record(zone_id, HOST, "AAAA", "2001:db8::10", proxied=True)
        grey = emu.add_dns_record(
            zone_id, HOST, "A", "192.0.2.11", ttl=300, comment="grey on purpose"
        )
        txt = emu.add_dns_record(zone_id, HOST, "TXT", "verification")
        www = emu.add_dns_record(zone_id, "www.example.com", "A", "192.0.2.1", proxied=True)
        registry = registry_for(emu, clocks)
        route = route_spec(dns_only=HOST)
        routes = {key("api"): route}

        async def scenario() -> list[Any]:
            await registry.reconcile_zone(NS, ZONE, zone_spec(zone_id), TOKEN)
            failures_on = await cycle(registry, routes, {key("api"): [dns_only(HOST)]})
            during = by_id(emu.dns_records(zone_id))
            rerouted = registry.rerouted(NS, key("api"), route)
            message = registry.conditions(NS, key("api"), route)[0].message
            failures_off = await cycle(registry, routes, {key("api"): [dns_only(HOST, on=False)]})
            return [failures_on, during, rerouted, message, failures_off]

        failures_on, during, rerouted, message, failures_off = run(registry, scenario)
        after = by_id(emu.dns_records(zone_id))
        patched = [e.body["proxied"] for e in emu.requests(method="PATCH")]

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
    assert emu.effectively_proxied(zone_id, HOST) is True


def test_a_hostname_shared_with_another_route_is_refused() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        zone_id = emu.add_zone(plan="pro")
        emu.add_dns_record(zone_id, HOST, "A", "192.0.2.10", proxied=True)
        registry = registry_for(emu, clocks)
        route = route_spec(dns_only=HOST)
        other = route_spec(HOST, "/")  # served on that host, no DNS-only allowed
        routes = {key("api"): route, key("site"): other}

        async def scenario() -> str:
            await registry.reconcile_zone(NS, ZONE, zone_spec(zone_id), TOKEN)
            for name, spec in routes.items():
                registry.observe(NS, name, spec)
            with pytest.raises(EdgeRefused) as refused:
                await registry.apply(NS, key("api"), route, [dns_only(HOST)])
            return str(refused.value)

        message = run(registry, scenario)
        patches = emu.requests(method="PATCH")

    assert message == (
        f"{HOST} also serves TimeoutBudget shop/site, which does not allow DNS-only there: "
        "a DNS-only hostname must be dedicated"
    )
    assert patches == []


def test_a_failure_half_way_puts_the_switched_records_back() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        zone_id = emu.add_zone(plan="pro")
        first = emu.add_dns_record(zone_id, HOST, "A", "192.0.2.10", proxied=True, comment="a")
        second = emu.add_dns_record(zone_id, HOST, "AAAA", "2001:db8::10", proxied=True)
        registry = registry_for(emu, clocks)
        route = route_spec(dns_only=HOST)
        routes = {key("api"): route}
        # The emulator lists records ordered by type: A first, then AAAA.
        emu.fail_next(
            1,
            status=500,
            method="PATCH",
            path_prefix=f"/zones/{zone_id}/dns_records/{second['id']}",
        )

        async def scenario() -> tuple[dict[str, str], frozenset[RerouteTarget]]:
            await registry.reconcile_zone(NS, ZONE, zone_spec(zone_id), TOKEN)
            failures = await cycle(registry, routes, {key("api"): [dns_only(HOST)]})
            return failures, registry.rerouted(NS, key("api"), route)

        failures, rerouted = run(registry, scenario)
        after = by_id(emu.dns_records(zone_id))

    assert "Cloudflare error 500" in failures[key("api")]
    assert "the 1 record(s) already switched were put back" in failures[key("api")]
    assert rerouted == frozenset()
    assert (after[first["id"]]["proxied"], after[first["id"]]["comment"]) == (True, "a")
    assert after[second["id"]]["proxied"] is True
    assert emu.effectively_proxied(zone_id, HOST) is True


def test_finalize_restores_the_proxied_flag_and_removes_the_rule() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        zone_id = emu.add_zone(plan="enterprise")
        record = emu.add_dns_record(zone_id, HOST, "CNAME", "lb.example.net", proxied=True)
        registry = registry_for(emu, clocks)
        route = route_spec(required=300, dns_only=HOST)
        routes = {key("api"): route}

        async def scenario() -> None:
            await registry.reconcile_zone(NS, ZONE, zone_spec(zone_id), TOKEN)
            await cycle(registry, routes, {key("api"): [read_timeout(route, 301), dns_only(HOST)]})
            assert emu.effectively_proxied(zone_id, HOST) is False
            assert len(emu.rules(zone_id)) == 1
            await registry.finalize_route(NS, key("api"), route)

        run(registry, scenario)
        after = by_id(emu.dns_records(zone_id))[record["id"]]
        rules = emu.rules(zone_id)

    assert (after["proxied"], after["comment"]) == (True, "")
    assert rules == []


def test_records_already_dns_only_by_someone_else_are_refused_with_a_reason() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        zone_id = emu.add_zone(plan="pro")
        emu.add_dns_record(zone_id, HOST, "A", "192.0.2.10", proxied=False)
        registry = registry_for(emu, clocks)
        route = route_spec(dns_only=HOST)

        async def scenario() -> dict[str, str]:
            await registry.reconcile_zone(NS, ZONE, zone_spec(zone_id), TOKEN)
            return await cycle(registry, {key("api"): route}, {key("api"): [dns_only(HOST)]})

        failures = run(registry, scenario)

    assert "already DNS-only and the operator did not make it so" in failures[key("api")]
