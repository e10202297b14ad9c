"""The zone-wide raise (CloudflareZone ``spec.raiseProxyReadTimeout``) through the real SDK
against the emulator: a route serving POST that needs more than the zone's 120 s gets the
zone's ``proxy_read_timeout`` raised (its Cache Rule covers only its GETs), the value found
is given back once no route needs it (also by an operator restarted in between), and a
value someone else set is never lowered nor "given back"."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sandbox.cloudflare_emulator import CloudflareEmulator
from tests.integration.edge_fixtures import (
    API,
    NS,
    TOKEN,
    ZONE,
    EdgeWorld,
    condition,
    read_timeout,
    zone_spec,
)
from timeout_budget.decide.coverage import coverage
from timeout_budget.model.coverage import Coverage
from timeout_budget.model.spec import CloudflareZoneSpec, TimeoutBudgetSpec, parse_timeout_budget

pytestmark = pytest.mark.integration

HOST, PATH = "api.example.com", "/export"
RAISE = {"raiseProxyReadTimeout": {"enabled": True, "ceilingSeconds": 600}}


def post_route(required: int | None = 300) -> TimeoutBudgetSpec:
    body: dict[str, Any] = {
        "route": {"host": HOST, "pathPrefix": PATH, "methods": ["GET", "POST"]},
        "latency": {"metric": "http_request_duration_seconds"},
        "origin": {"deploymentName": "api"},
        "edge": {"zoneRef": {"name": ZONE}},
    }
    if required is not None:
        body["budget"] = {"requiredSeconds": required}
    return parse_timeout_budget(body)


def someone_sets(emu: CloudflareEmulator, zone_id: str, seconds: int) -> None:
    """A person (dashboard, Terraform) changing the zone setting with their own request."""
    answer = httpx.patch(
        f"{emu.base_url}/zones/{zone_id}/settings/proxy_read_timeout",
        json={"value": seconds},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert answer.status_code == 200, answer.text


async def rule_cycle(edge: EdgeWorld, spec: TimeoutBudgetSpec, seconds: int | None) -> None:
    assert await edge.cycle_api(spec, read_timeout(spec, seconds)) == {}


def test_post_route_gets_the_zone_raised_and_the_value_back_after(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="enterprise", proxy_read_timeout=120)
    zone = zone_spec(zone_id, **RAISE)
    route = post_route()
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        first = await edge.sync(zone)
        await rule_cycle(edge, route, 301)
        seen["due_after_rule"] = edge.registry.due(NS, ZONE, zone)
        raised = await edge.sync(zone, previous=first)
        seen["raised"] = raised
        seen["post_raised"] = edge.emu.edge_request(zone_id, "POST", HOST, "/export/1")
        seen["coverage_raised"] = coverage(route, edge.registry.observe(NS, API, route))
        seen["due_while_raised"] = edge.registry.due(NS, ZONE, zone)
        # The route needs nothing more (its rule goes): the zone's value comes back.
        plain = post_route(required=None)
        await rule_cycle(edge, plain, None)
        seen["due_after_release"] = edge.registry.due(NS, ZONE, zone)
        seen["back"] = await edge.sync(zone, previous=raised)
        seen["post_back"] = edge.emu.edge_request(zone_id, "POST", HOST, "/export/1")

    edge.run(scenario)
    patches = [p.body for p in edge.emu.requests(method="PATCH", path_contains="proxy_read")]

    assert seen["due_after_rule"] is True  # the next timer tick syncs the zone
    raised = seen["raised"]
    assert raised["effectiveProxyReadTimeoutSeconds"] == 301
    assert raised["proxyReadTimeoutRaise"] == {
        "fromSeconds": 120,
        "toSeconds": 301,
        "forRoutes": ["shop/api"],
    }
    enforced = condition(raised, "ProxyReadTimeoutEnforced")
    assert (enforced["status"], enforced["reason"]) == ("True", "Raised")
    assert "from 120s to 301s for shop/api" in enforced["message"]
    assert seen["post_raised"].read_timeout == 301  # the edge itself now waits 301 s
    assert seen["coverage_raised"] == (
        Coverage(("GET",), "CacheRule", 301),
        Coverage(("POST",), "ZoneTimeout", 301),
    )
    assert seen["due_while_raised"] is False
    assert seen["due_after_release"] is True
    back = seen["back"]
    assert back["effectiveProxyReadTimeoutSeconds"] == 120
    assert back["proxyReadTimeoutRaise"] is None  # the patch removes the field
    assert condition(back, "ProxyReadTimeoutEnforced")["reason"] == "NotConfigured"
    assert seen["post_back"].read_timeout == 120
    assert patches == [{"value": 301}, {"value": 120}]


def test_a_restarted_operator_gives_the_value_back_from_the_status(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="enterprise", proxy_read_timeout=150)
    zone = zone_spec(zone_id, **RAISE)

    async def before() -> dict[str, Any]:
        await edge.sync(zone)
        await rule_cycle(edge, post_route(), 301)
        return await edge.sync(zone)

    raised = edge.run(before)
    restarted = edge.new_registry()  # a new process: nothing kept in memory
    seen: dict[str, Any] = {}

    async def after() -> None:
        # The new process reads its zones before its first cycle knows the routes:
        # the raise recorded in the status holds.
        seen["resumed"] = await edge.sync(zone, previous=raised)
        # Then the first cycle: the route needs nothing more, its rule goes.
        await rule_cycle(edge, post_route(required=None), None)
        seen["due"] = restarted.due(NS, ZONE, zone)
        seen["status"] = await edge.sync(zone, previous=seen["resumed"])

    edge.run(after)
    setting = edge.emu.setting(zone_id)

    assert raised["proxyReadTimeoutRaise"]["fromSeconds"] == 150
    assert seen["resumed"]["effectiveProxyReadTimeoutSeconds"] == 301
    assert seen["resumed"]["proxyReadTimeoutRaise"] == raised["proxyReadTimeoutRaise"]
    assert seen["due"] is True
    assert setting["value"] == 150  # given back to what was found, not to Cloudflare's 120
    assert seen["status"]["proxyReadTimeoutRaise"] is None


def test_someone_elses_value_is_never_lowered_nor_given_back(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="enterprise", proxy_read_timeout=120)
    zone = zone_spec(zone_id, **RAISE)
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        await edge.sync(zone)
        await rule_cycle(edge, post_route(), 301)
        raised = await edge.sync(zone)
        someone_sets(edge.emu, zone_id, 500)  # while the operator holds it raised
        edge.clocks.advance(zone.sync_interval_seconds)
        seen["after_foreign"] = await edge.sync(zone, previous=raised)
        await rule_cycle(edge, post_route(required=None), None)
        seen["due_without_need"] = edge.registry.due(NS, ZONE, zone)
        edge.clocks.advance(zone.sync_interval_seconds)
        seen["later"] = await edge.sync(zone, previous=seen["after_foreign"])

    edge.run(scenario)
    patches = [p.body for p in edge.emu.requests(method="PATCH", path_contains="proxy_read")]
    setting = edge.emu.setting(zone_id)

    assert patches == [{"value": 301}, {"value": 500}]  # the operator's raise, then theirs
    assert setting["value"] == 500
    after = seen["after_foreign"]
    assert after["proxyReadTimeoutRaise"] is None
    assert "changed by someone else" in condition(after, "ProxyReadTimeoutEnforced")["message"]
    assert seen["due_without_need"] is False
    assert seen["later"]["effectiveProxyReadTimeoutSeconds"] == 500


def test_the_ceiling_bounds_the_raise_and_says_so(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="enterprise", proxy_read_timeout=120)
    zone = zone_spec(zone_id, raiseProxyReadTimeout={"enabled": True, "ceilingSeconds": 200})
    route = post_route()
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        await edge.sync(zone)
        await rule_cycle(edge, route, 301)
        seen["status"] = await edge.sync(zone)
        seen["coverage"] = coverage(route, edge.registry.observe(NS, API, route))

    edge.run(scenario)

    status = seen["status"]
    assert status["effectiveProxyReadTimeoutSeconds"] == 200
    assert "ceiling of 200s" in condition(status, "ProxyReadTimeoutEnforced")["message"]
    assert seen["coverage"][1] == Coverage(("POST",), "None", 200)


def test_without_the_opt_in_or_on_a_pro_zone_nothing_is_sent(edge: EdgeWorld) -> None:
    off = edge.emu.add_zone(plan="enterprise", proxy_read_timeout=120)
    pro = edge.emu.add_zone(plan="pro", proxy_read_timeout=120)
    seen: dict[str, Any] = {}
    for name, zone_id, extra in (("off", off, {}), ("pro", pro, RAISE)):
        edge.new_registry()
        zone = zone_spec(zone_id, **extra)

        async def scenario(z: CloudflareZoneSpec = zone) -> dict[str, Any]:
            await edge.sync(z)
            # A Pro zone takes no rule with a read timeout: the route's need is declared.
            edge.registry.observe(NS, API, post_route())
            return await edge.sync(z)

        seen[name] = edge.run(scenario)
    patches = edge.emu.requests(method="PATCH", path_contains="proxy_read")

    assert patches == []
    assert (
        "raiseProxyReadTimeout is off"
        in condition(seen["off"], "ProxyReadTimeoutEnforced")["message"]
    )
    assert "Enterprise only" in condition(seen["pro"], "ProxyReadTimeoutEnforced")["message"]
