"""The operator's loop on real parts: the sandbox's control plane, a real Prometheus scraping
the synthetic origin, and the operator process itself. Each test asserts what a user would
see: Deployment replicas, the HPA's minReplicas, the Service selector, the route's status
and its Events."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

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
    event_reasons,
    hpa,
    selector_of,
    service,
    spec_replicas,
    status_of,
)
from tests.support.operator import OperatorProcess

pytestmark = pytest.mark.integration

NS_PREFIX = "loop"


@pytest.fixture(scope="module")
def operator(
    control_plane: ControlPlane, prometheus: PrometheusServer, ns: str
) -> Iterator[OperatorProcess]:
    yield from operator_process.running(
        operator_process.start(control_plane, prometheus.url, ns, "loop")
    )


def test_scale_up_reroute_recover_undo_and_scale_down(
    control_plane: ControlPlane, origin: OriginExporter, operator: OperatorProcess, ns: str
) -> None:
    cp = control_plane
    origin.set_route("ladder", p95=20.0, rps=40, host=HOST)
    apply(cp, ns, deployment("ladder", 1), service("ladder", {"app": "ladder"}))
    reroute = {"serviceName": "ladder", "longRunningSelector": {"pool": "long-running"}}
    apply(
        cp,
        ns,
        budget(
            "ladder", "ladder", reroute={**reroute, "afterEvaluations": 2, "recoverySeconds": 3}
        ),
    )
    kube.wait_for(
        lambda: status_of(cp, ns, "ladder").get("state") == "Healthy", 60, "Healthy at 20 s"
    )
    assert spec_replicas(cp, ns, "ladder") == 1

    # At risk (P95 ~110 s >= 96 s): scale up one step per cycle to maxReplicas (3).
    origin.set_route("ladder", p95=110.0, rps=40, host=HOST)
    kube.wait_for(lambda: spec_replicas(cp, ns, "ladder") == 3, 90, "scale-up to 3")
    dep = kube.get_json(cp, "deployment", "ladder", "-n", ns)
    assert dep["metadata"]["annotations"]["timeoutbudget.io/baseline-replicas"] == "1"
    # Still at risk at max replicas for 2 evaluations: the Service is rerouted.
    kube.wait_for(lambda: selector_of(cp, ns, "ladder") == {"pool": "long-running"}, 60, "reroute")
    svc = kube.get_json(cp, "service", "ladder", "-n", ns)
    saved = svc["metadata"]["annotations"]["timeoutbudget.io/original-selector"]
    assert json.loads(saved) == {"app": "ladder"}
    st = kube.wait_for(
        lambda: (s := status_of(cp, ns, "ladder")).get("rerouted") and s, 30, "rerouted status"
    )
    assert st["state"] in ("Rerouted", "AtRisk", "Breaching")
    assert st["budgetSeconds"] == 120
    assert st["p95Seconds"] >= 96

    # Recovery below 72 s: the reroute is undone first, then one step down at a time.
    origin.set_route("ladder", p95=20.0, rps=40, host=HOST)
    kube.wait_for(lambda: selector_of(cp, ns, "ladder") == {"app": "ladder"}, 90, "undo reroute")
    assert "timeoutbudget.io/original-selector" not in (
        kube.get_json(cp, "service", "ladder", "-n", ns)["metadata"].get("annotations") or {}
    )
    seen: list[int] = []

    def back_to_one() -> bool:
        seen.append(spec_replicas(cp, ns, "ladder"))
        return seen[-1] == 1

    kube.wait_for(back_to_one, 90, "scale-down to the baseline")
    # One step at a time: never a jump from 3 straight to 1.
    steps = [r for i, r in enumerate(seen) if i == 0 or r != seen[i - 1]]
    assert steps[-2:] == [2, 1] or steps == [1], steps
    final = kube.wait_for(
        lambda: (s := status_of(cp, ns, "ladder")).get("state") == "Healthy" and s, 30, "Healthy"
    )
    assert final["conditions"]
    reasons = event_reasons(cp, ns, "ladder")
    assert "Scaled" in reasons
    assert "Rerouted" in reasons
    assert "RerouteUndone" in reasons


def test_hpa_is_raised_not_fought_and_restored_on_delete(
    control_plane: ControlPlane, origin: OriginExporter, operator: OperatorProcess, ns: str
) -> None:
    cp = control_plane
    origin.set_route("withhpa", p95=110.0, rps=40, host=HOST)
    apply(cp, ns, deployment("withhpa", 1), hpa("withhpa"), budget("withhpa", "withhpa"))

    def hpa_min() -> int:
        return int(kube.get_json(cp, "hpa", "withhpa", "-n", ns)["spec"]["minReplicas"])

    kube.wait_for(lambda: hpa_min() == 3, 90, "HPA minReplicas raised to 3")
    annotations = kube.get_json(cp, "hpa", "withhpa", "-n", ns)["metadata"]["annotations"]
    assert annotations["timeoutbudget.io/baseline-min-replicas"] == "1"
    # The HPA controller, not the operator, moves the Deployment.
    kube.wait_for(lambda: spec_replicas(cp, ns, "withhpa") == 3, 60, "HPA scales the Deployment")
    dep = kube.get_json(cp, "deployment", "withhpa", "-n", ns)
    assert "timeoutbudget.io/baseline-replicas" not in (dep["metadata"].get("annotations") or {})

    cp.kubectl("delete", "tb", "withhpa", "-n", ns, "--timeout=60s")
    assert hpa_min() == 1
    notes = kube.get_json(cp, "hpa", "withhpa", "-n", ns)["metadata"].get("annotations") or {}
    assert "timeoutbudget.io/baseline-min-replicas" not in notes


def test_no_data_holds_everything(
    control_plane: ControlPlane, origin: OriginExporter, operator: OperatorProcess, ns: str
) -> None:
    cp = control_plane
    origin.set_route("quiet", p95=110.0, rps=40, host=HOST)
    apply(cp, ns, deployment("quiet", 1), budget("quiet", "quiet"))
    kube.wait_for(lambda: spec_replicas(cp, ns, "quiet") == 3, 90, "scale-up to 3")
    # Traffic stops: rate() over the window becomes 0/0 = NaN: no data, never "fast".
    origin.set_route("quiet", p95=110.0, rps=0, host=HOST)
    st = kube.wait_for(
        lambda: (s := status_of(cp, ns, "quiet")).get("state") == "NoData" and s, 60, "NoData"
    )
    metrics = [c for c in st["conditions"] if c["type"] == "MetricsAvailable"]
    assert metrics
    assert metrics[0]["status"] == "False"
    assert "p95Seconds" not in st
    # Held for longer than the stabilization window: no scale-down.
    kube.hold(lambda: spec_replicas(cp, ns, "quiet") == 3, 8, "3 replicas", interval=1)
    assert status_of(cp, ns, "quiet")["state"] == "NoData"


def test_dry_run_plans_and_changes_nothing(
    control_plane: ControlPlane, origin: OriginExporter, operator: OperatorProcess, ns: str
) -> None:
    cp = control_plane
    origin.set_route("dry", p95=110.0, rps=40, host=HOST)
    apply(cp, ns, deployment("dry", 1), budget("dry", "dry", dryRun=True))
    st = kube.wait_for(
        lambda: (s := status_of(cp, ns, "dry")).get("plannedActions") and s, 60, "a plan"
    )
    assert any("scale Deployment dry to 2" in a for a in st["plannedActions"])
    assert st["lastAction"].startswith("planned: ")
    assert spec_replicas(cp, ns, "dry") == 1


def test_missing_deployment_is_reported(
    control_plane: ControlPlane, operator: OperatorProcess, ns: str
) -> None:
    cp = control_plane
    apply(cp, ns, budget("ghost", "ghost"))
    st = kube.wait_for(
        lambda: (s := status_of(cp, ns, "ghost")).get("message") and s, 60, "a message"
    )
    assert "Deployment ghost not found" in st["message"]
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
    assert ready["reason"] == "OriginNotFound"
