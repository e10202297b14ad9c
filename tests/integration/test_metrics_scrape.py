"""The operator's /metrics endpoint, scraped while the real operator process runs its loop
on the sandbox: per-route readings with sensible values (and none invented for a route
without traffic), actions by type and outcome, the loop's pace, Prometheus reads; a deleted
route's series disappear."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sandbox.controlplane import ControlPlane
from sandbox.origin_exporter import OriginExporter
from sandbox.prometheus import PrometheusServer
from tests.support import kube
from tests.support import operator as operator_process
from tests.support.objects import (
    HOST,
    apply,
    budget,
    deployment,
    spec_replicas,
    status_of,
)
from tests.support.operator import OperatorProcess
from timeout_budget import __version__

pytestmark = pytest.mark.integration

NS_PREFIX = "metrics"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, metric: str, **labels: str) -> float | None:
    return samples.get((metric, frozenset(labels.items())))


def matching(
    samples: Samples, metric: str, **labels: str
) -> dict[frozenset[tuple[str, str]], float]:
    want = set(labels.items())
    return {k: v for (n, k), v in samples.items() if n == metric and want <= k}


@pytest.fixture(scope="module")
def operator(
    control_plane: ControlPlane, prometheus: PrometheusServer, ns: str
) -> Iterator[OperatorProcess]:
    yield from operator_process.running(
        operator_process.start(
            control_plane, prometheus.url, ns, "metrics", env={"TBO_OPERATOR_NAMESPACE": ns}
        )
    )


def test_metrics_during_a_run(
    control_plane: ControlPlane,
    origin: OriginExporter,
    operator: OperatorProcess,
    ns: str,
) -> None:
    cp = control_plane
    origin.set_route("m-slow", p95=110.0, rps=40, host=HOST)
    origin.set_route("m-fast", p95=20.0, rps=40, host=HOST)
    origin.set_route("m-quiet", p95=110.0, rps=0, host=HOST)  # no requests: no data
    origin.set_route("m-dry", p95=110.0, rps=40, host=HOST)
    for name in ("m-slow", "m-fast", "m-quiet", "m-dry"):
        apply(cp, ns, deployment(name, 1))
    apply(
        cp,
        ns,
        budget("m-slow", "m-slow"),
        budget("m-fast", "m-fast"),
        budget("m-quiet", "m-quiet"),
        budget("m-dry", "m-dry", dryRun=True),
    )
    kube.wait_for(lambda: spec_replicas(cp, ns, "m-slow") == 3, 90, "scale-up to 3")
    kube.wait_for(lambda: status_of(cp, ns, "m-quiet").get("state") == "NoData", 60, "NoData")
    kube.wait_for(lambda: status_of(cp, ns, "m-fast").get("state") == "Healthy", 60, "Healthy")
    kube.wait_for(lambda: status_of(cp, ns, "m-dry").get("plannedActions"), 60, "a plan")
    operator_process.wait_cycles(operator, 2)  # a whole cycle after the last status change
    s = scrape(operator.metrics_url)

    def route(metric: str, name: str) -> float | None:
        return value(s, f"timeout_budget_route_{metric}", namespace=ns, name=name)

    # Per route: P95 and its ratio to the 120 s budget, the state, the replicas asked for.
    slow_p95 = route("p95_seconds", "m-slow")
    assert slow_p95 is not None
    assert 96 <= slow_p95 <= 130
    assert route("budget_seconds", "m-slow") == 120
    assert route("budget_ratio", "m-slow") == pytest.approx(slow_p95 / 120, rel=0.05)
    assert route("desired_replicas", "m-slow") == 3
    slow_state = matching(s, "timeout_budget_route_state", namespace=ns, name="m-slow")
    assert list(slow_state.values()) == [1.0]  # one series, the current state
    assert dict(next(iter(slow_state)))["state"] in ("AtRisk", "Breaching")
    fast_p95 = route("p95_seconds", "m-fast")
    assert fast_p95 is not None
    assert 10 <= fast_p95 <= 30
    assert value(s, "timeout_budget_route_state", namespace=ns, name="m-fast", state="Healthy")
    # No traffic is no data, never 0: no P95 or ratio series at all.
    assert route("p95_seconds", "m-quiet") is None
    assert route("budget_ratio", "m-quiet") is None
    assert value(s, "timeout_budget_route_state", namespace=ns, name="m-quiet", state="NoData")

    # Actions by type and outcome: two scale-ups applied, the dry run's planned.
    applied = value(s, "timeout_budget_actions_total", action="scale", outcome="applied")
    assert applied is not None
    assert applied >= 2
    assert value(s, "timeout_budget_actions_total", action="scale", outcome="planned")
    assert spec_replicas(cp, ns, "m-dry") == 1

    # The loop and its Prometheus reads.
    assert (value(s, "timeout_budget_evaluation_cycles_total", result="ok") or 0) >= 3
    count = value(s, "timeout_budget_evaluation_cycle_duration_seconds_count") or 0
    total = value(s, "timeout_budget_evaluation_cycle_duration_seconds_sum") or 0
    assert count >= 3
    assert 0 < total / count < 1.0  # well inside the 1 s interval
    last = value(s, "timeout_budget_evaluation_last_success_timestamp_seconds") or 0
    assert time.time() - last < 15
    assert (value(s, "timeout_budget_prometheus_queries_total") or 0) >= count
    assert (value(s, "timeout_budget_prometheus_query_duration_seconds_count") or 0) >= count
    assert (value(s, "timeout_budget_latency_readings", outcome="Value") or 0) >= 3
    assert (value(s, "timeout_budget_latency_readings", outcome="NoData") or 0) >= 1
    assert value(s, "timeout_budget_latency_readings", outcome="MetricsUnavailable") == 0
    assert (value(s, "timeout_budget_routes", state="NoData") or 0) >= 1
    assert value(s, "timeout_budget_operator_info", version=__version__) == 1
    assert value(s, "process_cpu_seconds_total") is not None

    # A deleted route's series go with it.
    cp.kubectl("delete", "tb", "m-fast", "-n", ns, "--timeout=60s")

    def fast_gone() -> bool:
        return not matching(
            scrape(operator.metrics_url), "timeout_budget_route_state", name="m-fast"
        )

    kube.wait_for(fast_gone, 30, "m-fast's series removed")
    after = scrape(operator.metrics_url)
    assert not [k for (n, k) in after if ("name", "m-fast") in k]
    assert matching(after, "timeout_budget_route_state", namespace=ns, name="m-slow")


def test_the_endpoint_is_off_with_port_zero(
    control_plane: ControlPlane, prometheus: PrometheusServer, ns: str
) -> None:
    env = {"TBO_METRICS_PORT": "0", "TBO_OPERATOR_NAMESPACE": ns}
    proc = operator_process.start(
        control_plane, prometheus.url, ns, "metrics-off", interval=2.0, env=env
    )
    try:
        kube.wait_for(lambda: "metrics endpoint off" in proc.output(), 30, "startup")
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(proc.metrics_url, timeout=2)
        assert proc.alive(), proc.output()[-3000:]
    finally:
        proc.stop()
