"""Prometheus gone, and no traffic: the operator holds everything as it is.

A route is scaled to its maximum and rerouted. Then the data disappears: Prometheus is
stopped for several evaluation intervals (a real process stop, connection refused) just as
the route's recovery window starts counting, or the route's traffic stops while it is at
risk (``histogram_quantile`` is NaN, which read as 0 would look like a recovery). Nothing may
be undone on missing data: no scale-down, no reroute undone. When data returns the recovery
window starts again, and only after it has held does the operator undo the reroute and give
replicas back.

The module runs its own Prometheus (scraping the shared synthetic origin) so stopping it
disturbs no other test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from sandbox.controlplane import ControlPlane
from sandbox.origin_exporter import OriginExporter
from sandbox.prometheus import PrometheusServer
from tests.reliability.helpers import condition, short
from tests.support import kube, servers
from tests.support import operator as operator_process
from tests.support.foreign import Foreign
from tests.support.objects import (
    HOST,
    apply,
    budget,
    deployment,
    selector_of,
    service,
    spec_replicas,
    status_of,
)
from tests.support.operator import OperatorProcess
from tests.support.reliability import REPORT, foreign_checked

pytestmark = pytest.mark.integration

NS_PREFIX = "rel-prom"
AREA = "Faults: Prometheus"
INTERVAL = 1.0
DOWN_SECONDS = 8.0  # eight evaluation intervals
RECOVERY_SECONDS = 6
LONG = {"pool": "long-running"}


@pytest.fixture(scope="module")
def own_prometheus(
    origin: OriginExporter, control_plane: ControlPlane
) -> Iterator[PrometheusServer]:
    workdir = control_plane.workdir / "prometheus-faults"
    with servers.prometheus_scraping(origin, workdir) as server:
        REPORT.facts.setdefault("Prometheus", f"{server.version()} (Debian package)")
        yield server


@pytest.fixture(scope="module")
def foreign(control_plane: ControlPlane, ns: str) -> Iterator[Foreign]:
    yield from foreign_checked(
        Foreign(control_plane, ns).plant(),
        "Prometheus faults module: objects no TimeoutBudget names, next to rerouted routes",
    )


@pytest.fixture(scope="module")
def operator(
    control_plane: ControlPlane, own_prometheus: PrometheusServer, ns: str, foreign: Foreign
) -> Iterator[OperatorProcess]:
    yield from operator_process.running(
        operator_process.start(control_plane, own_prometheus.url, ns, "rel-prom", interval=INTERVAL)
    )


def climb(cp: ControlPlane, origin: OriginExporter, ns: str, name: str) -> None:
    """The route at its maximum (2 replicas) and rerouted to the long-running pool."""
    origin.set_route(name, p95=110.0, rps=40, host=HOST)
    reroute = {
        "serviceName": name,
        "longRunningSelector": LONG,
        "afterEvaluations": 1,
        "recoverySeconds": RECOVERY_SECONDS,
    }
    tb = budget(name, name, reroute=reroute)
    tb["spec"]["origin"]["maxReplicas"] = 2
    apply(cp, ns, deployment(name, 1), service(name, {"app": name}), tb)
    kube.wait_for(lambda: spec_replicas(cp, ns, name) == 2, 60, f"{name} scaled to 2")
    kube.wait_for(lambda: selector_of(cp, ns, name) == LONG, 60, f"{name} rerouted")


def recovering(cp: ControlPlane, ns: str, name: str) -> bool:
    memory = status_of(cp, ns, name).get("memory") or {}
    return bool(memory.get("recoveryStartedAt"))


def test_prometheus_stopped_holds_everything_then_recovers(
    control_plane: ControlPlane,
    origin: OriginExporter,
    own_prometheus: PrometheusServer,
    operator: OperatorProcess,
    ns: str,
    foreign: Foreign,
) -> None:
    cp, name = control_plane, "promdown"
    with REPORT.case(
        AREA,
        f"Prometheus process stopped for {DOWN_SECONDS:.0f} evaluation intervals, right after "
        "a rerouted route (2 of 2 replicas) started its recovery window",
        "replicas and Service selector unchanged at every check while down; state NoData; "
        "MetricsAvailable=False reason MetricsUnavailable; after restart the recovery window "
        f"starts again and takes {RECOVERY_SECONDS} s before the reroute is undone, then the "
        "replica is given back; operator process never exited",
    ) as row:
        climb(cp, origin, ns, name)
        origin.set_route(name, p95=20.0, rps=40, host=HOST)
        kube.wait_for(lambda: recovering(cp, ns, name), 30, "the recovery window to start")
        own_prometheus.stop()
        stopped_at = time.monotonic()
        try:
            checks = kube.hold(
                lambda: spec_replicas(cp, ns, name) == 2 and selector_of(cp, ns, name) == LONG,
                DOWN_SECONDS,
                "replicas and reroute while Prometheus is down",
            )
            held_for = time.monotonic() - stopped_at
            st = status_of(cp, ns, name)
            metrics = condition(st, "MetricsAvailable")
            assert st["state"] == "NoData", st
            assert metrics["status"] == "False", metrics
            assert metrics["reason"] == "MetricsUnavailable", metrics
            assert "Prometheus" in metrics["message"]
            assert "p95Seconds" not in st
            assert not (st.get("memory") or {}).get("recoveryStartedAt"), "window kept counting"
            assert operator.alive()
        finally:
            own_prometheus.start()
        back_at = time.monotonic()
        kube.wait_for(
            lambda: condition(status_of(cp, ns, name), "MetricsAvailable").get("status") == "True",
            60,
            "data again after the restart",
        )
        data_after = time.monotonic() - back_at
        kube.wait_for(lambda: selector_of(cp, ns, name) == {"app": name}, 60, "reroute undone")
        undone_after = time.monotonic() - back_at
        assert undone_after >= RECOVERY_SECONDS, "undone before a full window with data"
        kube.wait_for(lambda: spec_replicas(cp, ns, name) == 1, 60, "scaled back to 1")
        assert operator.alive()
        row.did = (
            f"held 2 replicas and the reroute for {held_for:.0f} s while down "
            f"({checks} checks); state NoData, MetricsAvailable=False/MetricsUnavailable: "
            f"'{short(metrics['message'], 160)}'; after restart: data in {data_after:.0f} s, "
            f"reroute undone {undone_after:.0f} s after restart, then scaled 2 → 1"
        )
        foreign.assert_unchanged()


def test_no_traffic_is_no_data_and_holds_everything(
    control_plane: ControlPlane,
    origin: OriginExporter,
    operator: OperatorProcess,
    ns: str,
    foreign: Foreign,
) -> None:
    cp, name = control_plane, "notraffic"
    with REPORT.case(
        AREA,
        "No traffic: the traffic of a rerouted route at its maximum (2 of 2 replicas, P95 "
        "110 s) stops; rate() over the window is 0/0 and histogram_quantile NaN. Read as 0 "
        "(KEDA's default) it would look recovered, undo the reroute and scale down",
        "state NoData with MetricsAvailable=False reason NoData, no p95Seconds (NaN never "
        "becomes 0); replicas and selector unchanged for longer than the recovery and "
        "stabilization windows; traffic back: a reading again, still rerouted",
    ) as row:
        climb(cp, origin, ns, name)
        origin.set_route(name, p95=110.0, rps=0, host=HOST)
        st = kube.wait_for(
            lambda: (s := status_of(cp, ns, name)).get("state") == "NoData" and s, 30, "NoData"
        )
        checks = kube.hold(
            lambda: spec_replicas(cp, ns, name) == 2 and selector_of(cp, ns, name) == LONG,
            DOWN_SECONDS,
            "replicas and reroute without traffic",
        )
        st = status_of(cp, ns, name)
        metrics = condition(st, "MetricsAvailable")
        assert st["state"] == "NoData"
        assert metrics["status"] == "False"
        assert metrics["reason"] == "NoData"
        assert "p95Seconds" not in st
        origin.set_route(name, p95=20.0, rps=40, host=HOST)
        back = kube.wait_for(
            lambda: (s := status_of(cp, ns, name)).get("p95Seconds") is not None and s,
            30,
            "a reading once traffic is back",
        )
        assert back["rerouted"] is True
        row.did = (
            f"state NoData, MetricsAvailable=False/NoData: '{short(metrics['message'], 150)}'; "
            f"2 replicas and the reroute held {DOWN_SECONDS:.0f} s ({checks} checks); traffic "
            f"back: P95 {back['p95Seconds']} s, state {back['state']}"
        )
        foreign.assert_unchanged()
