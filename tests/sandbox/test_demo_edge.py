"""The demo's 524s at the edge per route (``sandbox.demo_edge``), without a sandbox: which
route a request at the edge belongs to, the split at the operator's last action in
each load step, the summary's lines, and the slow path no TimeoutBudget covers."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest

from sandbox import demo_edge
from sandbox import demo_scenario as sc
from sandbox.demo_summary import render
from sandbox.demo_timeline import ActionKind, ActionRecord, DemoResult, EdgeCount, Span

pytestmark = pytest.mark.unit

API, WWW = "api.example.com", "www.example.com"
ROUTES = {"api": (API, "/"), "export": (API, "/export"), "reports": ("reports.example.com", "/")}


@pytest.mark.parametrize(
    ("host", "path", "route"),
    [
        (API, "/", "api"),
        (API, "/cart", "api"),
        (API, "/export", "export"),
        (API, "/export/a.csv", "export"),
        (API, "/exports", "api"),
        (WWW, "/export", None),
        ("reports.example.com", "/x", "reports"),
    ],
)
def test_a_request_belongs_to_the_longest_path_prefix_of_its_host(
    host: str, path: str, route: str | None
) -> None:
    assert demo_edge.route_of(ROUTES, host, path) == route


def test_the_load_steps_are_the_set_up_and_every_rising_phase() -> None:
    assert sc.fast().load_steps() == ["surge", "beyond max"]
    assert sc.default().load_steps() == ["surge", "beyond max"]


def action(t: float, route: str, kind: ActionKind, message: str) -> ActionRecord:
    return ActionRecord(t, route, kind, "Reason", message)


def count(t: float, path: str, status: int, n: int, host: str = API) -> EdgeCount:
    return EdgeCount(t, host, path, "GET", status, n)


def story() -> DemoResult:
    result = DemoResult("t", 1.0)
    result.phases = [Span("calm", 0, 4), Span("surge", 4, 18), Span("beyond max", 18, 38),
                     Span("recovery", 38, 80)]  # fmt: skip
    result.load_steps = ["surge", "beyond max"]
    result.edge_routes = dict(ROUTES)
    result.actions = [
        action(-2.0, "export", ActionKind.EDGE, "set the edge read timeout of x to 301s: y"),
        action(10.3, "api", ActionKind.SCALE_UP, "scale Deployment api to 4 (replicas): y"),
        action(11.3, "api", ActionKind.EDGE, "set the edge read timeout of x to 121s: y"),
        action(30.3, "api", ActionKind.REROUTE, "reroute Service api: y"),
        action(66.0, "api", ActionKind.EDGE, "remove the read timeout rule of x: y"),
    ]
    result.edge_counts = [
        count(-5.5, "/export", 524, 3),  # before export's rule
        count(-5.5, "/export", 200, 7),
        count(-1.5, "/export", 200, 10),
        count(6.5, "/", 524, 2),  # the surge, before the scale-up
        count(6.5, "/", 200, 14),
        count(10.5, "/", 524, 1),  # the second began after it
        count(21.5, "/", 524, 4),  # beyond max, before the reroute
        count(29.5, "/", 524, 1),
        count(30.5, "/", 524, 1),  # the reroute's Event says 30.3: taken by 31.3
        count(31.5, "/", 524, 1),
        count(25.5, "/export", 524, 2),  # a tail past 301 s: the operator did not act
        count(40.5, "/", 200, 10),
        count(12.5, "/export", 200, 5, host=WWW),
        count(13.5, "/export", 524, 1, host=WWW),
    ]
    return result


def test_the_524s_are_split_at_the_operators_last_action_in_each_load_step() -> None:
    result = story()
    api = demo_edge.route_edge(result, "api")
    assert [(s.name, s.before, s.after, s.acted and s.acted.t) for s in api.steps] == [
        ("set-up", 0, 0, None),
        ("surge", 3, 0, 11.3),  # the edge raise after the scale-up
        ("beyond max", 6, 1, 30.3),
    ]
    assert api.steps[1].describe() == (
        "surge: 3 before scale up at t=10s, edge timeout at t=11s, 0 after"
    )
    assert (api.before, api.after, api.unacted, api.errors, api.requests) == (9, 1, 0, 10, 34)
    assert api.headline() == (
        "api: 524s at the edge: 9 before the operator acted, 1 after (of 34 requests)"
    )
    export = demo_edge.route_edge(result, "export")
    assert (export.before, export.after, export.unacted) == (3, 0, 2)
    assert export.steps[2].describe() == "beyond max: 2 (the operator did not act)"
    assert export.steps[0].describe() == "set-up: 3 before edge timeout at t=-2s, 0 after"
    assert demo_edge.route_edge(result, "reports").headline() == (
        "reports: the edge saw none of its requests (its host is not proxied)"
    )
    assert demo_edge.unbudgeted(result) == {(WWW, "/export"): (6, 1)}


def test_the_summary_tells_the_524s_per_route_and_the_operators_view_if_there() -> None:
    result = story()
    lines = demo_edge.render(result, ["api", "export", "reports"])
    assert "  api: 524s at the edge: 9 before the operator acted, 1 after (of 34 requests)" in lines
    assert "  www.example.com/export (no TimeoutBudget): 1 524s at the edge of 6 requests" in lines
    assert lines[-1] == "  CloudflareZone status.edgeView.unbudgetedPaths: not reported"
    result.unbudgeted_paths = [
        {"host": WWW, "path": "/export", "requests": 6, "errors524": 1, "originP95Seconds": 124.6}
    ]
    lines = demo_edge.render(result, ["api"])
    assert lines[-1] == "    www.example.com/export: 6 requests, 1 524s, origin P95 125s"
    assert "status.edgeView.unbudgetedPaths (the operator's view)" in lines[-2]
    assert demo_edge.render(DemoResult("t", 1.0), []) == [
        "Cloudflare edge: no request was reported to it"
    ]
    assert "www.example.com/export (no TimeoutBudget): 1 524s" in render(result, 120)


def test_the_unbudgeted_path_waits_near_the_zones_timeout() -> None:
    """Its time to first byte is log-normal with the origin's parametrisation: about 7 %
    of its requests outlive the zone's 120 s, and none comes close to twice that."""
    u = sc.UNBUDGETED
    mu = math.log(u.p95) - NormalDist().inv_cdf(0.95) * u.sigma
    late = 1 - NormalDist(mu, u.sigma).cdf(math.log(sc.ZONE_PROXY_READ_TIMEOUT))
    assert 0.05 < late < 0.10
    assert 1 - NormalDist(mu, u.sigma).cdf(math.log(2 * sc.ZONE_PROXY_READ_TIMEOUT)) < 1e-3
    assert all(u.host != r.host for r in sc.ROUTES)
