"""The operator's own metrics, as a Prometheus scrape would see them: per-route readings that
never turn missing data into 0, one state series per route, actions by type and outcome,
the loop's pace, Prometheus and Cloudflare health, and no series left behind by a deleted
route."""

from __future__ import annotations

import urllib.request
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from timeout_budget.model.actions import (
    ActionKind,
    EdgeTimeout,
    Refusal,
    Reroute,
    RerouteTarget,
    RerouteVia,
    ScaleTo,
)
from timeout_budget.model.conditions import ConditionInput, ConditionStatus, ConditionType
from timeout_budget.model.coverage import Coverage
from timeout_budget.model.decision import Decision
from timeout_budget.model.edge_view import RouteEdge, Window
from timeout_budget.model.memory import Memory
from timeout_budget.model.observation import LatencyObservation
from timeout_budget.model.state import State
from timeout_budget.report import endpoint, metrics
from timeout_budget.report.endpoint import MetricsSettings
from timeout_budget.report.metrics import OperatorMetrics

pytestmark = pytest.mark.unit

NS, NAME = "shop", "checkout"


@pytest.fixture
def m() -> OperatorMetrics:
    return OperatorMetrics(CollectorRegistry())


def decision(
    state: State = State.HEALTHY,
    p95: float | None = 30.0,
    budget: int = 120,
    replicas: int = 2,
    refusals: tuple[Refusal, ...] = (),
) -> Decision:
    return Decision(
        state=state,
        budget_seconds=budget,
        p95_seconds=p95,
        actions=(),
        refusals=refusals,
        advice=None,
        memory=Memory(),
        message="",
        conditions=(),
        desired_replicas=replicas,
    )


def value(m: OperatorMetrics, metric: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(metric, labels)


def route_series(m: OperatorMetrics) -> list[str]:
    text = generate_latest(m.registry).decode()
    return [
        line
        for line in text.splitlines()
        if line.startswith("timeout_budget_route_") and NAME in line
    ]


def test_a_route_reading_becomes_p95_budget_ratio_state_and_replicas(m: OperatorMetrics) -> None:
    m.route(NS, NAME, decision(State.AT_RISK, p95=100.0, replicas=4))
    labels = {"namespace": NS, "name": NAME}
    assert value(m, "timeout_budget_route_p95_seconds", **labels) == 100.0
    assert value(m, "timeout_budget_route_budget_seconds", **labels) == 120.0
    assert value(m, "timeout_budget_route_budget_ratio", **labels) == pytest.approx(100 / 120)
    assert value(m, "timeout_budget_route_desired_replicas", **labels) == 4.0
    assert value(m, "timeout_budget_route_state", **labels, state="AtRisk") == 1.0


def test_no_data_removes_p95_and_ratio_instead_of_reporting_zero(m: OperatorMetrics) -> None:
    labels = {"namespace": NS, "name": NAME}
    m.route(NS, NAME, decision(State.HEALTHY, p95=30.0))
    m.route(NS, NAME, decision(State.NO_DATA, p95=None))
    assert value(m, "timeout_budget_route_p95_seconds", **labels) is None
    assert value(m, "timeout_budget_route_budget_ratio", **labels) is None
    assert value(m, "timeout_budget_route_budget_seconds", **labels) == 120.0
    assert value(m, "timeout_budget_route_state", **labels, state="NoData") == 1.0
    # Data comes back: so do the series.
    m.route(NS, NAME, decision(State.HEALTHY, p95=20.0))
    assert value(m, "timeout_budget_route_p95_seconds", **labels) == 20.0


def test_state_is_one_series_per_route_the_previous_state_goes(m: OperatorMetrics) -> None:
    for state in (State.HEALTHY, State.AT_RISK, State.BREACHING, State.REROUTED):
        m.route(NS, NAME, decision(state, p95=110.0))
    states = [line for line in route_series(m) if line.startswith("timeout_budget_route_state")]
    assert states == [
        f'timeout_budget_route_state{{name="{NAME}",namespace="{NS}",state="Rerouted"}} 1.0'
    ]


def test_a_route_not_reported_by_a_cycle_loses_every_series(m: OperatorMetrics) -> None:
    edge = [ConditionInput(ConditionType.EDGE_SYNCED, ConditionStatus.TRUE, "Synced")]
    m.route(NS, NAME, decision(State.AT_RISK, p95=100.0), edge)
    m.route(NS, "other", decision())
    m.cycle_done(0.5, {"AtRisk": 1, "Healthy": 1})
    assert len(route_series(m)) == 6  # p95, budget, ratio, state, replicas, edge_synced
    # The next cycle evaluates only "other" (checkout was deleted).
    m.route(NS, "other", decision())
    m.cycle_done(0.4, {"Healthy": 1})
    assert route_series(m) == []
    assert m.tracked_routes() == {(NS, "other")}
    assert value(m, "timeout_budget_routes", state="Healthy") == 1.0
    assert value(m, "timeout_budget_routes", state="AtRisk") == 0.0


def test_edge_synced_follows_the_route_condition(m: OperatorMetrics) -> None:
    labels = {"namespace": NS, "name": NAME}
    failing = ConditionInput(ConditionType.EDGE_SYNCED, ConditionStatus.FALSE, "RateLimited")
    m.route(NS, NAME, decision(), [failing])
    assert value(m, "timeout_budget_route_edge_synced", **labels) == 0.0
    m.route(NS, NAME, decision(), [])  # edge sync turned off: no series
    assert value(m, "timeout_budget_route_edge_synced", **labels) is None


def test_edge_coverage_is_one_series_per_method_group(m: OperatorMetrics) -> None:
    labels = {"namespace": NS, "name": NAME}
    covered = (Coverage(("GET", "HEAD"), "CacheRule", 301), Coverage(("POST",), "None", 120))
    m.route(NS, NAME, replace(decision(), edge_coverage=covered))
    series = "timeout_budget_route_edge_covered"
    assert value(m, series, **labels, method_group="GET,HEAD") == 1.0
    assert value(m, series, **labels, method_group="POST") == 0.0
    m.route(NS, NAME, decision())  # no zone known: no series
    assert value(m, series, **labels, method_group="POST") is None


def test_actions_are_counted_by_type_and_outcome(m: OperatorMetrics) -> None:
    svc = RerouteTarget(RerouteVia.SERVICE, "checkout")
    m.actions_done([ScaleTo("checkout", 3, via_hpa=False, reason="at risk")], "applied")
    m.actions_done([Reroute(svc, apply=True, reason="still at risk")], "applied")
    m.actions_done([Reroute(svc, apply=False, reason="recovered")], "failed")
    m.actions_done([EdgeTimeout("a.example.com", "/", 301, reason="needs 300s")], "planned")
    assert value(m, "timeout_budget_actions_total", action="scale", outcome="applied") == 1.0
    assert value(m, "timeout_budget_actions_total", action="reroute", outcome="applied") == 1.0
    assert value(m, "timeout_budget_actions_total", action="undo_reroute", outcome="failed") == 1.0
    assert value(m, "timeout_budget_actions_total", action="edge_timeout", outcome="planned") == 1.0


def test_a_refusal_counts_once_while_it_lasts(m: OperatorMetrics) -> None:
    no_plan = Refusal(
        ActionKind.EDGE_TIMEOUT, "raise the edge read timeout", "the zone's plan does not allow it"
    )
    for _ in range(3):
        m.route(NS, NAME, decision(State.BREACHING, p95=130.0, refusals=(no_plan,)))
    m.route(NS, NAME, decision(State.BREACHING, p95=130.0))
    m.route(NS, NAME, decision(State.BREACHING, p95=130.0, refusals=(no_plan,)))
    dns = Refusal(ActionKind.REROUTE, "switch x.example.com to DNS-only", "needs edge.sync")
    m.route(NS, NAME, decision(State.BREACHING, p95=130.0, refusals=(no_plan, dns)))
    assert value(m, "timeout_budget_actions_total", action="edge_timeout", outcome="refused") == 2
    assert value(m, "timeout_budget_actions_total", action="reroute", outcome="refused") == 1


def test_cycles_and_prometheus_reads(m: OperatorMetrics) -> None:
    m.latency_read(
        0.2,
        [
            LatencyObservation.value(30.0),
            LatencyObservation.no_data(),
            LatencyObservation.unavailable("connection refused"),
            None,  # not observed this cycle: treated as unavailable
        ],
        queries_sent=3,
    )
    m.latency_read(0.1, [LatencyObservation.value(30.0)], queries_sent=5)
    m.cycle_done(1.5, {"Healthy": 1})
    m.cycle_failed()
    assert value(m, "timeout_budget_prometheus_queries_total") == 5.0
    assert value(m, "timeout_budget_prometheus_query_duration_seconds_count") == 2.0
    errors = "timeout_budget_prometheus_query_errors_total"
    assert value(m, errors, outcome="MetricsUnavailable") == 1.0
    assert value(m, "timeout_budget_latency_readings", outcome="Value") == 1.0
    assert value(m, "timeout_budget_latency_readings", outcome="MetricsUnavailable") == 0.0
    assert value(m, "timeout_budget_evaluation_cycle_duration_seconds_sum") == 1.5
    assert value(m, "timeout_budget_evaluation_cycles_total", result="ok") == 1.0
    assert value(m, "timeout_budget_evaluation_cycles_total", result="failed") == 1.0
    assert (value(m, "timeout_budget_evaluation_last_success_timestamp_seconds") or 0) > 0


def test_cloudflare_requests_errors_429s_and_budget(m: OperatorMetrics) -> None:
    m.cloudflare_request("put_cache_rules", "ok", duration_seconds=0.3)
    m.cloudflare_request("put_cache_rules", "rate_limited", duration_seconds=0.1)
    m.cloudflare_request("get_zone_setting", "something new")  # unknown: unavailable
    m.cloudflare_not_sent("budget_spent")
    m.cloudflare_budget(NS, "example-com", remaining=590, limit=600)
    m.cloudflare_zone_synced(NS, "example-com", synced=False)
    req = "timeout_budget_cloudflare_api_requests_total"
    assert value(m, req, operation="put_cache_rules", outcome="ok") == 1.0
    assert value(m, req, operation="put_cache_rules", outcome="rate_limited") == 1.0
    assert value(m, req, operation="get_zone_setting", outcome="unavailable") == 1.0
    err = "timeout_budget_cloudflare_api_errors_total"
    assert value(m, err, operation="put_cache_rules", kind="rate_limited") == 1.0
    limited = "timeout_budget_cloudflare_api_rate_limited_total"
    assert value(m, limited, operation="put_cache_rules") == 1.0
    assert value(m, "timeout_budget_cloudflare_api_requests_not_sent_total", reason="budget_spent")
    zone = {"namespace": NS, "zone": "example-com"}
    assert value(m, "timeout_budget_cloudflare_request_budget_remaining", **zone) == 590.0
    assert value(m, "timeout_budget_cloudflare_request_budget_limit", **zone) == 600.0
    assert value(m, "timeout_budget_cloudflare_zone_synced", **zone) == 0.0
    m.forget_cloudflare_zone(NS, "example-com")
    m.forget_cloudflare_zone(NS, "example-com")  # twice is harmless
    assert value(m, "timeout_budget_cloudflare_zone_synced", **zone) is None


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, MetricsSettings(9090, "0.0.0.0")),
        ({"TBO_METRICS_PORT": "0"}, MetricsSettings(0, "0.0.0.0")),
        (
            {"TBO_METRICS_PORT": "19090", "TBO_METRICS_ADDRESS": "127.0.0.1"},
            MetricsSettings(19090, "127.0.0.1"),
        ),
    ],
)
def test_settings_from_env(env: dict[str, str], expected: MetricsSettings) -> None:
    assert MetricsSettings.from_env(env) == expected


@pytest.mark.parametrize("port", ["http", "-1", "70000"])
def test_bad_port_is_named(port: str) -> None:
    with pytest.raises(endpoint.SettingsError, match="TBO_METRICS_PORT"):
        MetricsSettings.from_env({"TBO_METRICS_PORT": port})


def test_port_zero_serves_nothing() -> None:
    assert endpoint.serve(MetricsSettings(port=0)) is False


def test_the_endpoint_serves_the_process_registry(unused_port: int) -> None:
    assert endpoint.serve(MetricsSettings(port=unused_port, address="127.0.0.1"))
    metrics.METRICS.cloudflare_request("list_dns_records")
    url = f"http://127.0.0.1:{unused_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    assert 'timeout_budget_operator_info{version="' in text
    assert 'timeout_budget_cloudflare_api_requests_total{operation="list_dns_records"' in text
    assert "process_cpu_seconds_total" in text  # the default collectors come along
    # Once per process: a second call reuses the running endpoint.
    assert endpoint.serve(MetricsSettings(port=unused_port, address="127.0.0.1"))


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_origin_copies_by_kind(m: OperatorMetrics) -> None:
    m.origin_copies({"deployments": (10_000, True), "services": (9_000, False)})
    assert value(m, "timeout_budget_origin_objects", kind="deployments") == 10_000
    assert value(m, "timeout_budget_origin_copy_current", kind="deployments") == 1
    assert value(m, "timeout_budget_origin_copy_current", kind="services") == 0
    m.origin_copies({"services": (9_001, True)})  # listed again
    assert value(m, "timeout_budget_origin_copy_current", kind="services") == 1
    assert value(m, "timeout_budget_origin_objects", kind="services") == 9_001


def test_the_edge_view_of_a_route_becomes_its_edge_series(m: OperatorMetrics) -> None:
    labels = {"namespace": NS, "name": NAME}
    edge = RouteEdge(Window(0.0, 300.0), 20, 3, 3, 301.0, 1, 1.0, 40.0, True)
    alarm = [
        ConditionInput(ConditionType.EDGE_ERRORS, ConditionStatus.TRUE, "Edge524sWithinBudget"),
        ConditionInput(ConditionType.EDGE_AGREES, ConditionStatus.FALSE, "EdgeSlower"),
    ]
    m.route(NS, NAME, decision(), alarm, edge=edge)
    assert value(m, "timeout_budget_route_edge_524", **labels) == 3.0
    assert value(m, "timeout_budget_route_edge_5xx", **labels) == 3.0
    assert value(m, "timeout_budget_route_edge_requests", **labels) == 20.0
    assert value(m, "timeout_budget_route_edge_origin_p95_seconds", **labels) == 301.0
    assert value(m, "timeout_budget_route_edge_errors", **labels) == 1.0
    assert value(m, "timeout_budget_route_edge_agrees", **labels) == 0.0
    unknown = [ConditionInput(ConditionType.EDGE_AGREES, ConditionStatus.UNKNOWN, "NotCompared")]
    quiet = RouteEdge(Window(0.0, 300.0), 0, 0, 0, None, 0, 1.0)
    m.route(NS, NAME, decision(), unknown, edge=quiet)
    assert value(m, "timeout_budget_route_edge_524", **labels) == 0.0
    assert value(m, "timeout_budget_route_edge_origin_p95_seconds", **labels) is None
    assert value(m, "timeout_budget_route_edge_agrees", **labels) is None  # Unknown: absent
    m.route(NS, NAME, decision(), [])  # no view read: no edge series
    assert value(m, "timeout_budget_route_edge_524", **labels) is None
