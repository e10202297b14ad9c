"""The edge reader through the real HTTP path: the ZoneRegistry reads Cloudflare's GraphQL
Analytics (the emulator's, validated against the schema of the fields) with the real
``cloudflare`` SDK's HTTP client, as the CloudflareZone handlers and the engine call it.

The emulator's data clock is the test's (``traffic.clock``), so windows and lateness are
exact: what Cloudflare has not finished is not read, a window is read once, and the
routes' conditions and the zone's unbudgeted paths follow what the edge saw.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.cloudflare_emulator.analytics import Hit
from sandbox.cloudflare_emulator.tokens import ALL_PERMISSIONS, ANALYTICS_READ
from tests.integration.edge_fixtures import (
    API,
    NS,
    EdgeWorld,
    condition,
    edge_world,
    key,
    route_spec,
    zone_spec,
)
from timeout_budget.decide import edge_view
from timeout_budget.model.timestamps import rfc3339

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_ambient_credentials")]

ANALYTICS = {"analytics": {"intervalSeconds": 300, "delaySeconds": 300}}
REPORTS = key("reports")


@pytest.fixture
def edge() -> Iterator[EdgeWorld]:
    with edge_world() as world:
        world.emu.traffic.clock = world.clocks.registry  # Cloudflare's data on the test's time
        world.emu.traffic.delay_seconds = 300
        yield world


def graphql_requests(edge: EdgeWorld) -> list[Any]:
    return edge.emu.requests("POST", "/graphql")


def hits(
    edge: EdgeWorld, zone_id: str, at: float, path: str, *times: float, status: int = 200
) -> None:
    for n, seconds in enumerate(times):
        edge.emu.traffic.record(
            Hit(at + n * 0.01, zone_id, "api.example.com", path, "GET", status, seconds * 1000)
        )


def window(edge: EdgeWorld) -> edge_view.Window:
    return edge_view.finished_window(edge.clocks.registry(), 300, 300)


def test_one_query_per_finished_window_covering_the_whole_zone(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="enterprise", name="example.com")
    spec = zone_spec(zone_id, **ANALYTICS)
    first = window(edge)
    hits(edge, zone_id, first.start + 10, "/export", 1.0, 2.0, 3.0)
    hits(edge, zone_id, first.start - 5, "/export", 50.0)  # the window before: not in it
    hits(edge, zone_id, first.end + 1, "/export", 70.0)  # the next window: not finished

    async def scenario() -> None:
        status = await edge.sync(spec)
        view = status["edgeView"]
        assert view["available"] is True
        assert (view["windowStart"], view["windowEnd"]) == (
            rfc3339(first.start, whole_seconds=True),
            rfc3339(first.end, whole_seconds=True),
        )
        assert (view["requests"], view["errors524"]) == (3, 0)
        # The availability probe, then one query for the zone (two dataset nodes).
        sent = graphql_requests(edge)
        assert len(sent) == 2
        assert "settings" in sent[0].body["query"]
        assert sent[1].body["variables"]["zoneTag"] == zone_id
        # The same window is never read twice; the zone is not even due for it.
        finished = first.end + 300 + 300  # when Cloudflare has finished the next window
        edge.clocks.advance(finished - edge.clocks.registry() - 1)
        assert not edge.registry.due(NS, "edge", spec)
        await edge.sync(spec)
        assert len(graphql_requests(edge)) == 2
        # Once Cloudflare has finished the next window, it is read, once.
        edge.clocks.advance(1)
        assert edge.registry.due(NS, "edge", spec)
        status = await edge.sync(spec)
        assert len(graphql_requests(edge)) == 3
        assert status["edgeView"]["requests"] == 1  # the 70 s request of the next window
        assert status["edgeView"]["windowStart"] == rfc3339(first.end, whole_seconds=True)

    edge.run(scenario)


def test_data_later_than_the_delay_is_missing_from_the_window_read(edge: EdgeWorld) -> None:
    """Cloudflare later than ``delaySeconds`` says: the window read lacks what it did not
    show yet (why the default waits five minutes, as Cloudflare's own exporter does)."""
    edge.emu.traffic.delay_seconds = 450  # at read time it shows up to 50 s before the end
    zone_id = edge.emu.add_zone(plan="enterprise", name="example.com")
    first = window(edge)
    hits(edge, zone_id, first.start + 10, "/export", 1.0)
    hits(edge, zone_id, first.end - 10, "/export", 2.0)  # not yet shown at read time

    async def scenario() -> None:
        status = await edge.sync(zone_spec(zone_id, **ANALYTICS))
        assert status["edgeView"]["requests"] == 1

    edge.run(scenario)


def test_routes_get_their_share_and_conditions_and_unbudgeted_paths_are_listed(
    edge: EdgeWorld,
) -> None:
    zone_id = edge.emu.add_zone(plan="enterprise", name="example.com")
    spec = zone_spec(zone_id, **ANALYTICS)
    first = window(edge)
    hits(edge, zone_id, first.start + 1, "/export/big", *[121.0] * 3, status=524)
    hits(edge, zone_id, first.start + 2, "/export/big", *[40.0] * 17)
    hits(edge, zone_id, first.start + 3, "/reports/q3", *[110.0] * 10)  # near the zone's 120 s
    hits(edge, zone_id, first.start + 4, "/health", *[0.01] * 50)  # fast: not listed
    export = route_spec(path="/export")

    async def scenario() -> None:
        await edge.cycle({API: export}, {})  # the engine has shown the registry its routes
        status = await edge.sync(spec)
        assert status["edgeView"]["unbudgetedPaths"] == [
            {
                "host": "api.example.com",
                "path": "/reports/q3",
                "requests": 10,
                "errors524": 0,
                "originP95Seconds": 110.0,
            }
        ]
        share = edge.registry.edge_view(NS, API, export)
        assert share is not None
        assert (share.requests, share.errors_524, share.errors_5xx) == (20, 3, 3)
        assert share.p95_seconds == 121.0
        found = {c.type: c for c in edge.registry.conditions(NS, API, export)}
        assert (found["EdgeErrors"].status, found["EdgeErrors"].reason) == (
            "Unknown",
            "NotCompared",
        )
        # The engine asks Prometheus about the same window, once, and says what it saw.
        assert edge.registry.comparisons_due() == {API: first}
        edge.registry.compared({API: (first, 45.0)})
        assert edge.registry.comparisons_due() == {}
        found = {c.type: c for c in edge.registry.conditions(NS, API, export)}
        assert (found["EdgeErrors"].status, found["EdgeErrors"].reason) == (
            "True",
            "Edge524sWithinBudget",
        )
        assert "3 524s at the edge" in found["EdgeErrors"].message
        assert (found["EdgeAgrees"].status, found["EdgeAgrees"].reason) == (
            "False",
            "EdgeSlower",
        )
        # A TimeoutBudget for /reports covers the path: it leaves the list at the next read.
        await edge.cycle({API: export, REPORTS: route_spec(path="/reports")}, {})
        edge.clocks.advance(300)
        hits(edge, zone_id, first.end + 3, "/reports/q3", *[110.0] * 10)
        status = await edge.sync(spec)
        assert status["edgeView"]["unbudgetedPaths"] == []

    edge.run(scenario)


def test_a_plan_without_the_dataset_is_said_and_costs_one_probe_an_hour(
    edge: EdgeWorld,
) -> None:
    zone_id = edge.emu.add_zone(plan="free", name="example.com")
    spec = zone_spec(zone_id, **ANALYTICS)

    async def scenario() -> None:
        status = await edge.sync(spec)
        view = status["edgeView"]
        assert view["available"] is False
        assert "plan has no access" in view["message"]
        assert condition(status, "EdgeSynced")["status"] == "True"  # the rest still works
        edge.clocks.advance(1800)
        await edge.sync(spec)
        assert len(graphql_requests(edge)) == 1  # the probe only
        edge.clocks.advance(1800)
        await edge.sync(spec)
        assert len(graphql_requests(edge)) == 2  # probed again after an hour

    edge.run(scenario)


def test_a_token_without_analytics_read_is_named(edge: EdgeWorld) -> None:
    edge.emu.add_token("no-analytics-token", ALL_PERMISSIONS - {ANALYTICS_READ})
    zone_id = edge.emu.add_zone(plan="enterprise", name="example.com")

    async def scenario() -> None:
        status = await edge.sync(zone_spec(zone_id, **ANALYTICS), token="no-analytics-token")
        assert status["edgeView"]["available"] is False
        assert "Analytics Read" in status["edgeView"]["message"]
        assert condition(status, "EdgeSynced")["status"] == "True"

    edge.run(scenario)


def test_the_graphql_budget_429_stops_analytics_only_until_retry(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="enterprise", name="example.com")
    spec = zone_spec(zone_id, **ANALYTICS)
    edge.emu.traffic.charge("user", 299)  # the dashboard's analytics spent the user's budget

    async def scenario() -> None:
        status = await edge.sync(spec)  # the probe (cost 1) fits, the query (2) does not
        assert status["edgeView"]["available"] is True
        assert "rate limiter budget depleted" in status["edgeView"]["message"]
        assert "windowStart" not in status["edgeView"]
        assert [r.status for r in graphql_requests(edge)] == [200, 429]
        # REST calls go on: the GraphQL budget is not the API's rate limit.
        assert condition(status, "EdgeSynced")["status"] == "True"
        edge.clocks.advance(60)
        await edge.sync(spec)
        assert len(graphql_requests(edge)) == 2  # nothing sent before Retry-After
        edge.clocks.advance(300)
        status = await edge.sync(spec)
        assert [r.status for r in graphql_requests(edge)][-1] == 200
        assert "windowStart" in status["edgeView"]

    edge.run(scenario)


def test_the_operators_own_analytics_budget_holds_before_sending(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="enterprise", name="example.com")
    edge.new_registry(analytics_budget=2)

    async def scenario() -> None:
        status = await edge.sync(zone_spec(zone_id, **ANALYTICS))
        assert "not sent" in status["edgeView"]["message"]
        assert len(graphql_requests(edge)) == 1  # the probe; the query would pass the cap

    edge.run(scenario)


def test_a_zone_with_analytics_off_sends_no_query(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="enterprise", name="example.com")

    async def scenario() -> None:
        status = await edge.sync(zone_spec(zone_id, analytics={"enabled": False}))
        assert status["edgeView"] == {
            "available": False,
            "message": "spec.analytics.enabled is false",
        }
        assert graphql_requests(edge) == []
        assert edge.registry.conditions(NS, API, route_spec()) is not None

    edge.run(scenario)
