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

import pytest

from sandbox.prometheus import PrometheusServer
from tests.reliability import fixtures
from tests.reliability.helpers import Scene, condition, short
from tests.support import kube
from tests.support.objects import (
    HOST,
    budget,
    deployment,
    service,
)

pytestmark = pytest.mark.integration

NS_PREFIX = "rel-prom"
AREA = "Faults: Prometheus"
INTERVAL = 1.0
DOWN_SECONDS = 8.0  # eight evaluation intervals
RECOVERY_SECONDS = 6
LONG = {"pool": "long-running"}


own_prometheus = fixtures.prometheus("origin", "prometheus-faults", report_version=True)
foreign = fixtures.foreign(
    "Prometheus faults module: objects no TimeoutBudget names, next to rerouted routes"
)
operator = fixtures.operator("rel-prom", "own_prometheus", interval=INTERVAL)


def climb(scene: Scene, name: str) -> None:
    """The route at its maximum (2 replicas) and rerouted to the long-running pool."""
    scene.origin.set_route(name, p95=110.0, rps=40, host=HOST)
    reroute = {
        "serviceName": name,
        "longRunningSelector": LONG,
        "afterEvaluations": 1,
        "recoverySeconds": RECOVERY_SECONDS,
    }
    tb = budget(name, name, reroute=reroute)
    tb["spec"]["origin"]["maxReplicas"] = 2
    scene.apply(deployment(name, 1), service(name, {"app": name}), tb)
    kube.wait_for(lambda: scene.replicas(name) == 2, 60, f"{name} scaled to 2")
    kube.wait_for(lambda: scene.selector(name) == LONG, 60, f"{name} rerouted")


def recovering(scene: Scene, name: str) -> bool:
    memory = scene.status(name).get("memory") or {}
    return bool(memory.get("recoveryStartedAt"))


def test_prometheus_stopped_holds_everything_then_recovers(
    scene: Scene, own_prometheus: PrometheusServer
) -> None:
    name = "promdown"
    with scene.case(
        f"Prometheus process stopped for {DOWN_SECONDS:.0f} evaluation intervals, right after "
        "a rerouted route (2 of 2 replicas) started its recovery window",
        "replicas and Service selector unchanged at every check while down; state NoData; "
        "MetricsAvailable=False reason MetricsUnavailable; after restart the recovery window "
        f"starts again and takes {RECOVERY_SECONDS} s before the reroute is undone, then the "
        "replica is given back; operator process never exited",
    ) as row:
        climb(scene, name)
        scene.origin.set_route(name, p95=20.0, rps=40, host=HOST)
        kube.wait_for(lambda: recovering(scene, name), 30, "the recovery window to start")
        own_prometheus.stop()
        stopped_at = time.monotonic()
        try:
            checks = kube.hold(
                lambda: scene.replicas(name) == 2 and scene.selector(name) == LONG,
                DOWN_SECONDS,
                "replicas and reroute while Prometheus is down",
            )
            held_for = time.monotonic() - stopped_at
            st = scene.status(name)
            metrics = condition(st, "MetricsAvailable")
            assert st["state"] == "NoData", st
            assert metrics["status"] == "False", metrics
            assert metrics["reason"] == "MetricsUnavailable", metrics
            assert "Prometheus" in metrics["message"]
            assert "p95Seconds" not in st
            assert not (st.get("memory") or {}).get("recoveryStartedAt"), "window kept counting"
            assert scene.operator.alive()
        finally:
            own_prometheus.start()
        back_at = time.monotonic()
        kube.wait_for(
            lambda: condition(scene.status(name), "MetricsAvailable").get("status") == "True",
            60,
            "data again after the restart",
        )
        data_after = time.monotonic() - back_at
        kube.wait_for(lambda: scene.selector(name) == {"app": name}, 60, "reroute undone")
        undone_after = time.monotonic() - back_at
        assert undone_after >= RECOVERY_SECONDS, "undone before a full window with data"
        kube.wait_for(lambda: scene.replicas(name) == 1, 60, "scaled back to 1")
        assert scene.operator.alive()
        row.did = (
            f"held 2 replicas and the reroute for {held_for:.0f} s while down "
            f"({checks} checks); state NoData, MetricsAvailable=False/MetricsUnavailable: "
            f"'{short(metrics['message'], 160)}'; after restart: data in {data_after:.0f} s, "
            f"reroute undone {undone_after:.0f} s after restart, then scaled 2 → 1"
        )


def test_no_traffic_is_no_data_and_holds_everything(scene: Scene) -> None:
    name = "notraffic"
    with scene.case(
        "No traffic: the traffic of a rerouted route at its maximum (2 of 2 replicas, P95 "
        "110 s) stops; rate() over the window is 0/0 and histogram_quantile NaN. Read as 0 "
        "(KEDA's default) it would look recovered, undo the reroute and scale down",
        "state NoData with MetricsAvailable=False reason NoData, no p95Seconds (NaN never "
        "becomes 0); replicas and selector unchanged for longer than the recovery and "
        "stabilization windows; traffic back: a reading again, still rerouted",
    ) as row:
        climb(scene, name)
        scene.origin.set_route(name, p95=110.0, rps=0, host=HOST)
        st = kube.wait_for(
            lambda: (s := scene.status(name)).get("state") == "NoData" and s, 30, "NoData"
        )
        checks = kube.hold(
            lambda: scene.replicas(name) == 2 and scene.selector(name) == LONG,
            DOWN_SECONDS,
            "replicas and reroute without traffic",
        )
        st = scene.status(name)
        metrics = condition(st, "MetricsAvailable")
        assert st["state"] == "NoData"
        assert metrics["status"] == "False"
        assert metrics["reason"] == "NoData"
        assert "p95Seconds" not in st
        scene.origin.set_route(name, p95=20.0, rps=40, host=HOST)
        back = kube.wait_for(
            lambda: (s := scene.status(name)).get("p95Seconds") is not None and s,
            30,
            "a reading once traffic is back",
        )
        assert back["rerouted"] is True
        row.did = (
            f"state NoData, MetricsAvailable=False/NoData: '{short(metrics['message'], 150)}'; "
            f"2 replicas and the reroute held {DOWN_SECONDS:.0f} s ({checks} checks); traffic "
            f"back: P95 {back['p95Seconds']} s, state {back['state']}"
        )
