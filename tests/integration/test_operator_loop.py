"""The operator's loop on real parts: the sandbox's control plane, a real Prometheus scraping
the synthetic origin, and the operator process itself. Each test asserts what a user would
see: Deployment replicas, the HPA's minReplicas, the Service selector, the route's status
and its Events."""

from __future__ import annotations

import json
import subprocess
import sys
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
    chain_of,
    deployment,
    event_reasons,
    hpa,
    ingress,
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


def test_a_declared_app_server_shorter_than_the_budget_is_shown_in_the_chain(
    control_plane: ControlPlane, origin: OriginExporter, operator: OperatorProcess, ns: str
) -> None:
    """spec.chain.appServer (gunicorn, 30 s) behind a 120 s budget: status.chain shows the
    hops and their verdicts, ChainConsistent says which fires first, and the wide printer
    column shows it at a glance."""
    cp = control_plane
    origin.set_route("worker", p95=10.0, rps=20, host=HOST)
    app_server = {"appServer": {"name": "gunicorn", "requestTimeoutSeconds": 30}}
    apply(cp, ns, deployment("worker", 1), budget("worker", "worker", chain=app_server))
    st = kube.wait_for(lambda: (s := status_of(cp, ns, "worker")).get("chain") and s, 60, "chain")
    assert [(h["hop"], h.get("timeoutSeconds"), h["verdict"]) for h in st["chain"]] == [
        ("cloudflare", 120, "Ok"),
        ("app", 30, "FiresFirst"),
    ]
    chain = next(c for c in st["conditions"] if c["type"] == "ChainConsistent")
    assert (chain["status"], chain["reason"]) == ("False", "InnerHopFiresFirst")
    assert "raise its timeout to at least 121s" in chain["message"]
    wide = cp.kubectl("get", "tb", "worker", "-n", ns, "-o", "wide").stdout
    assert "InnerHopFiresFirst" in wide
    # Fixed in the spec: the chain is consistent.
    app_server["appServer"]["requestTimeoutSeconds"] = 300
    apply(cp, ns, budget("worker", "worker", chain=app_server))
    kube.wait_for(
        lambda: any(
            c["type"] == "ChainConsistent" and c["reason"] == "Consistent"
            for c in status_of(cp, ns, "worker").get("conditions", [])
        ),
        60,
        "a consistent chain",
    )


def test_the_ingress_in_front_is_found_and_followed(
    control_plane: ControlPlane, origin: OriginExporter, operator: OperatorProcess, ns: str
) -> None:
    """An ingress-nginx Ingress with a 60 s read timeout in front of a POST route (nginx does
    not retry a POST) under a 120 s budget: it fires first. The annotation raised to 300 s
    (seen through the watch-fed copy) makes the chain consistent."""
    cp = control_plane
    origin.set_route("ingest", p95=10.0, rps=20, host=HOST)
    route = budget("ingest", "ingest", chain={})
    route["spec"]["route"]["methods"] = ["POST"]
    apply(cp, ns, deployment("ingest", 1), ingress("ingest", "/ingest", "60"), route)

    kube.wait_for(
        lambda: (
            chain_of(cp, ns, "ingest")
            == [("cloudflare", 120, "Ok"), ("ingress-nginx", 60, "FiresFirst")]
        ),
        60,
        "the Ingress in the chain",
    )
    st = status_of(cp, ns, "ingest")
    found = next(c for c in st["conditions"] if c["type"] == "ChainConsistent")
    assert found["message"].startswith(
        f"ingress-nginx (Ingress {ns}/ingest) fires first: a visitor gets 504 after 60s"
    )
    assert st["chain"][1]["source"] == "annotation"
    # The command a person runs: the same story, from the API server.
    explained = explain(cp, f"{ns}/ingest")
    assert f"TimeoutBudget {ns}/ingest: {HOST}/ingest (POST)" in explained
    assert "ChainConsistent" in explained
    assert any("60s" in line and "FiresFirst" in line for line in explained.splitlines())
    by_host = explain(cp, "--host", HOST, "--path", "/ingest/big")
    assert f"TimeoutBudget {ns}/ingest:" in by_host
    apply(cp, ns, ingress("ingest", "/ingest", "300"))
    kube.wait_for(
        lambda: (
            chain_of(cp, ns, "ingest") == [("cloudflare", 120, "Ok"), ("ingress-nginx", 300, "Ok")]
        ),
        60,
        "the raised annotation followed",
    )


def explain(cp: ControlPlane, *args: str) -> str:
    """``timeout-budget explain`` as a person runs it, against the sandbox's API server."""
    command = [sys.executable, "-m", "timeout_budget", "explain", *args]
    command += ["--kubeconfig", str(cp.kubeconfig)]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout
