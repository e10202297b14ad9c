"""The edge's view, read purely: windows, attribution, the agreement rule, unbudgeted paths,
and the query text against Cloudflare's schema of the fields used."""

from __future__ import annotations

from pathlib import Path

import graphql
import pytest

from timeout_budget.decide import edge_view
from timeout_budget.decide.edge_view import Cover
from timeout_budget.edge import analytics
from timeout_budget.model.conditions import ConditionStatus as S
from timeout_budget.model.edge_view import EdgePath, RouteEdge, Window, ZoneEdgeView
from timeout_budget.model.spec import RouteKey

pytestmark = pytest.mark.unit

SCHEMA = Path(__file__).parents[2] / "sandbox" / "cloudflare_emulator" / "analytics_schema.graphql"


# -- windows ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("now", "interval", "delay", "start", "end"),
    [
        (1_000_000.0, 300, 300, 999_300.0, 999_600.0),  # 999700 floored to 999600
        (999_900.0, 300, 300, 999_300.0, 999_600.0),  # exactly at a boundary: finished
        (999_899.9, 300, 300, 999_000.0, 999_300.0),  # a breath before: the one before
        (1_000_007.0, 10, 5, 999_990.0, 1_000_000.0),
        (1_000_020.0, 60, 0, 999_960.0, 1_000_020.0),  # no delay: the minute just ended
    ],
)
def test_the_newest_finished_window_ends_delay_seconds_ago_on_an_interval_boundary(
    now: float, interval: int, delay: int, start: float, end: float
) -> None:
    assert edge_view.finished_window(now, interval, delay) == Window(start, end)


def test_a_window_is_read_once_and_the_next_when_it_is_finished() -> None:
    first = edge_view.due(None, 1_000_000.0, 300, 300)
    assert first == Window(999_300.0, 999_600.0)
    assert edge_view.due(first.end, 1_000_000.0, 300, 300) is None
    assert edge_view.due(first.end, 1_000_199.9, 300, 300) is None
    assert edge_view.due(first.end, 1_000_200.0, 300, 300) == Window(999_600.0, 999_900.0)
    # After a pause, one window from where the last ended: no minute skipped, one query.
    assert edge_view.due(first.end, 1_003_000.0, 300, 300) == Window(999_600.0, 1_002_600.0)
    # At most a day (Cloudflare's maxDuration) after a long outage.
    assert edge_view.due(first.end, 1_200_000.0, 300, 300) == Window(1_113_300.0, 1_199_700.0)


# -- attribution ------------------------------------------------------------------------
WINDOW = Window(0.0, 300.0)


def view(*paths: EdgePath) -> ZoneEdgeView:
    return ZoneEdgeView(WINDOW, 600.0, paths)


def test_each_path_belongs_to_the_longest_prefix_of_its_host() -> None:
    paths = view(
        EdgePath("api.example.com", "/export/big", 10, 2, 2, 130.0),
        EdgePath("api.example.com", "/export", 5, 0, 0, 40.0),
        EdgePath("api.example.com", "/exports", 7, 0, 0, 9.0),  # a segment prefix: not /export
        EdgePath("api.example.com", "/users", 100, 1, 0, 0.5),
        EdgePath("www.example.com", "/export/big", 3, 0, 0, 1.0),  # another host
        EdgePath("API.example.com", "/export/./big", 1, 0, 0, 2.0),  # as Cloudflare normalizes
    )
    covers = [
        Cover(RouteKey("ns/all"), "api.example.com", "/"),
        Cover(RouteKey("ns/export"), "api.example.com", "/export"),
        Cover(RouteKey("ns/quiet"), "api.example.com", "/never"),
    ]
    owned, nobody = edge_view.attribute(paths, covers)
    export = owned[RouteKey("ns/export")]
    assert (export.requests, export.errors_5xx, export.errors_524, export.paths) == (16, 2, 2, 3)
    assert export.p95_seconds == 130.0  # the largest of its paths'
    everything = owned[RouteKey("ns/all")]
    assert (everything.requests, everything.errors_5xx, everything.paths) == (107, 1, 2)
    assert owned[RouteKey("ns/quiet")] == RouteEdge(WINDOW, 0, 0, 0, None, 0, 1.0)
    assert [(p.host, p.path) for p in nobody] == [("www.example.com", "/export/big")]


def test_unbudgeted_paths_are_the_slow_or_failing_ones_the_worst_first() -> None:
    found = edge_view.unbudgeted(
        [
            EdgePath("a.example.com", "/fast", 100, 0, 0, 1.0),
            EdgePath("a.example.com", "/slow", 10, 0, 0, 96.0),  # 0.8 x 120 exactly
            EdgePath("a.example.com", "/nearly", 10, 0, 0, 95.9),
            EdgePath("a.example.com", "/timeouts", 10, 3, 3, 50.0),
            EdgePath("a.example.com", "/unmeasured", 10, 0, 0, None),
        ],
        120,
        0.8,
    )
    assert [u.path for u in found] == ["/timeouts", "/slow"]
    assert found[0].to_status() == {
        "host": "a.example.com",
        "path": "/timeouts",
        "requests": 10,
        "errors524": 3,
        "originP95Seconds": 50.0,
    }


@pytest.mark.parametrize(
    ("p95", "zone", "budget"),
    [(None, 120, 120), (30.0, 120, 120), (96.0, 120, 200), (101.0, 120, 210), (4000.0, 100, 6000)],
)
def test_a_suggested_budget_puts_the_edge_p95_at_half_of_it(
    p95: float | None, zone: int, budget: int
) -> None:
    assert edge_view.suggested_budget_seconds(p95, zone) == budget


# -- conditions -------------------------------------------------------------------------
def edge(
    p95: float | None = 50.0, prom: float | None = 45.0, e524: int = 0, compared: bool = True
) -> RouteEdge:
    return RouteEdge(WINDOW, 100, e524, e524, p95, 1, 1.0, prom, compared)


@pytest.mark.parametrize(
    ("p95", "prom", "status", "reason"),
    [
        (50.0, 45.0, S.TRUE, "Agrees"),
        (75.0, 45.0, S.TRUE, "Agrees"),  # 30 s apart, 0.25 x 120 = 30: the line holds
        (75.1, 45.0, S.FALSE, "EdgeSlower"),  # queueing in front of the pods
        (10.0, 45.0, S.FALSE, "EdgeFaster"),
        (None, 45.0, S.UNKNOWN, "NoEdgeRequests"),
        (50.0, None, S.UNKNOWN, "NoPrometheusData"),
    ],
)
def test_the_edge_agrees_within_a_fraction_of_the_budget(
    p95: float | None, prom: float | None, status: S, reason: str
) -> None:
    found = edge_view.edge_agrees(edge(p95, prom), 120, 0.25)
    assert (found.type, found.status, found.reason) == ("EdgeAgrees", status, reason)


def test_not_compared_yet_is_unknown_not_a_disagreement_nor_an_alarm() -> None:
    found = edge_view.edge_agrees(edge(prom=None, compared=False), 120, 0.25)
    assert (found.status, found.reason) == (S.UNKNOWN, "NotCompared")
    found = edge_view.edge_errors(edge(prom=None, e524=3, compared=False), 120)
    assert (found.status, found.reason) == (S.UNKNOWN, "NotCompared")
    assert "3 524s at the edge" in found.message


@pytest.mark.parametrize(
    ("e524", "prom", "status", "reason"),
    [
        (0, 45.0, S.FALSE, "No524s"),
        (3, 45.0, S.TRUE, "Edge524sWithinBudget"),  # the alarm: the histogram misses it
        (3, None, S.TRUE, "Edge524sWithinBudget"),  # no P95 is no excuse
        (3, 130.0, S.FALSE, "OverBudget"),  # expected: the ladder acts on it
    ],
)
def test_edge_errors_alarm_only_when_prometheus_saw_the_route_within_budget(
    e524: int, prom: float | None, status: S, reason: str
) -> None:
    found = edge_view.edge_errors(edge(prom=prom, e524=e524), 120)
    assert (found.type, found.status, found.reason) == ("EdgeErrors", status, reason)
    if e524:
        assert f"{e524} 524s at the edge" in found.message


def test_no_view_yet_says_why() -> None:
    found = edge_view.conditions(None, 120, 0.25, "not read: Cloudflare rate limit")
    assert [(c.type, c.status, c.reason) for c in found] == [
        ("EdgeErrors", S.UNKNOWN, "NotRead"),
        ("EdgeAgrees", S.UNKNOWN, "NotRead"),
    ]
    assert "rate limit" in found[0].message


# -- the query --------------------------------------------------------------------------
@pytest.mark.parametrize("text", [analytics.QUERY, analytics.PROBE])
def test_the_queries_are_valid_against_cloudflares_schema_of_the_fields(text: str) -> None:
    schema = graphql.build_schema(SCHEMA.read_text())
    assert graphql.validate(schema, graphql.parse(text)) == []


def test_the_query_uses_only_fields_the_probe_asks_for() -> None:
    used: set[str] = set()
    path: list[str] = []

    class Visitor(graphql.Visitor):
        def enter_field(self, node: graphql.FieldNode, *_: object) -> None:
            path.append(node.name.value)

        def leave_field(self, node: graphql.FieldNode, *_: object) -> None:
            if not node.selection_set and len(path) >= 2:
                parent = path[-2]
                used.add(
                    node.name.value
                    if parent == analytics.DATASET
                    else f"{parent}_{node.name.value}"
                )
            path.pop()

    graphql.visit(graphql.parse(analytics.QUERY), Visitor())
    assert used - {"zoneTag"} == analytics.FIELDS_USED


def test_an_answer_becomes_one_path_per_host_and_path() -> None:
    data = {
        "viewer": {
            "zones": [
                {
                    "paths": [
                        {
                            "count": 40,
                            "avg": {"sampleInterval": 1},
                            "dimensions": {
                                "clientRequestHTTPHost": "a.example.com",
                                "clientRequestPath": "/x",
                            },
                            "quantiles": {"originResponseDurationMsP95": 125000},
                        }
                    ],
                    "errors": [
                        {
                            "count": 7,
                            "dimensions": {
                                "clientRequestHTTPHost": "a.example.com",
                                "clientRequestPath": "/x",
                                "edgeResponseStatus": 524,
                            },
                        },
                        {
                            "count": 2,
                            "dimensions": {
                                "clientRequestHTTPHost": "a.example.com",
                                "clientRequestPath": "/x",
                                "edgeResponseStatus": 502,
                            },
                        },
                        {
                            "count": 1,
                            "dimensions": {
                                "clientRequestHTTPHost": "a.example.com",
                                "clientRequestPath": "/y",
                                "edgeResponseStatus": 500,
                            },
                        },
                    ],
                }
            ]
        }
    }
    parsed = analytics.parse(data, WINDOW, 600.0, 10_000)
    assert set(parsed.paths) == {
        EdgePath("a.example.com", "/x", 40, 9, 7, 125.0, 1.0),
        EdgePath("a.example.com", "/y", 1, 1, 0, None, 1.0),
    }
    assert not parsed.truncated
