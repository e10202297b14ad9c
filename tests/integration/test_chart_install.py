"""The chart installed into the sandbox with ``helm install``, and the operator run with a
token of the chart's own ServiceAccount (TokenRequest), configured exactly as the chart's
Deployment configures it. The loop then runs on those permissions alone: scale-up,
reroute, status, Events, the finalizer's undo, kopf peering and its health endpoint;
SelfSubjectAccessReviews show what the ServiceAccount must not do is denied. Upgrade and
uninstall keep the CRDs and the users' resources."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from sandbox.controlplane import ControlPlane, kubeconfig_dict
from sandbox.origin_exporter import OriginExporter
from sandbox.procutil import free_port
from sandbox.prometheus import PrometheusServer
from tests.support import kube
from tests.support.helm import CHART, Helm
from tests.support.objects import (
    HOST,
    apply,
    budget,
    deployment,
    event_reasons,
    selector_of,
    service,
    spec_replicas,
    status_of,
)
from tests.support.operator import OperatorProcess

pytestmark = pytest.mark.integration

FORBIDDEN = re.compile(r"forbidden|HTTP/1\.1\" 403 |status=403", re.IGNORECASE)
# In namespaced mode kopf lists namespaces and CRDs cluster-wide, retries, then falls back
# by design (the chart's namespaced scope grants nothing cluster-wide); any other refusal
# is a missing rule.
EXPECTED_FALLBACKS = (
    "Not enough permissions to list namespaces",
    "Not enough permissions to watch for namespaces",
    "Not enough permissions to watch for resources",
    "GET https://127.0.0.1:{port}/api/v1/namespaces ",
    "GET https://127.0.0.1:{port}/apis/apiextensions.k8s.io/v1/customresourcedefinitions ",
)


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str
    fullname: str
    app_namespace: str
    kubeconfig: Path
    """The chart's ServiceAccount's token, nothing else."""
    notes: str
    """What ``helm install`` printed (the chart's NOTES.txt)."""


def sa_kubeconfig(cp: ControlPlane, namespace: str, account: str, path: Path) -> Path:
    token = cp.kubectl("create", "token", account, "-n", namespace, "--duration=2h").stdout
    config = kubeconfig_dict(cp.server, cp.pki / "ca.crt", token.strip(), account)
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def install(
    cp: ControlPlane, helm: Helm, name: str, namespace: str, prometheus_url: str, *sets: str
) -> str:
    return helm.run(
        "install", name, str(CHART), "--namespace", namespace,
        "--wait", "--timeout", "90s",
        "--set", f"prometheus.url={prometheus_url}", "--set", f"fullnameOverride={name}",
        *[arg for s in sets for arg in ("--set", s)],
    ).stdout  # fmt: skip


def chart_configuration(cp: ControlPlane, release: Release) -> tuple[list[str], dict[str, str]]:
    """The operator container's args and env as the chart's Deployment sets them."""
    dep = kube.get_json(cp, "deployment", release.fullname, "-n", release.namespace)
    container = dep["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        elif item["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace":
            env[item["name"]] = release.namespace
    # Local process: loopback ports for metrics and health, not the pod's 0.0.0.0.
    for local in ("TBO_METRICS_ADDRESS", "TBO_METRICS_PORT"):
        env.pop(local)
    args = [a for a in container["args"] if not a.startswith("--liveness=")]
    return args, env


def can_i(cp: ControlPlane, kubeconfig: Path, *query: str) -> bool:
    """A SelfSubjectAccessReview with the ServiceAccount's own token."""
    result = subprocess.run(
        [str(cp.binaries.kubectl), f"--kubeconfig={kubeconfig}", "auth", "can-i", *query],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), result.stderr
    return answer == "yes"


def get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def forbidden_lines(cp: ControlPlane, log: str) -> list[str]:
    expected = [text.format(port=cp.apiserver_port) for text in EXPECTED_FALLBACKS]
    return [
        line
        for line in log.splitlines()
        if FORBIDDEN.search(line) and not any(text in line for text in expected)
    ]


@pytest.fixture(scope="module")
def helm(control_plane: ControlPlane) -> Helm:
    return Helm(control_plane.binaries.helm, control_plane.env())


def released(
    cp: ControlPlane, helm: Helm, prometheus: PrometheusServer, prefix: str, *sets: str
) -> Iterator[Release]:
    """The chart installed as ``<prefix>-<n>`` into a new namespace with ``sets`` (which may
    name the new app namespace as ``{app}``); uninstalled and both namespaces deleted after."""
    op, app = kube.new_namespace(cp, prefix), kube.new_namespace(cp, "app")
    name = f"{prefix}-{op.split('-')[1]}"
    notes = install(cp, helm, name, op, prometheus.url, *[s.format(app=app) for s in sets])
    path = sa_kubeconfig(cp, op, name, cp.workdir / f"{name}.kubeconfig")
    yield Release(name, op, name, app, path, notes)
    helm.run("uninstall", name, "--namespace", op, check=False)
    for ns in (app, op):
        cp.kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture(scope="module")
def namespaced_release(
    control_plane: ControlPlane, helm: Helm, prometheus: PrometheusServer
) -> Iterator[Release]:
    yield from released(
        control_plane, helm, prometheus, "tbo",
        "rbac.scope=namespaced", "watchNamespaces={{{app}}}",
        "peering.enabled=true", "peering.lifetimeSeconds=10", "evaluationInterval=1",
    )  # fmt: skip


@pytest.fixture(scope="module")
def cluster_release(
    control_plane: ControlPlane, helm: Helm, prometheus: PrometheusServer
) -> Iterator[Release]:
    yield from released(control_plane, helm, prometheus, "tbc", "evaluationInterval=1")


def run_operator(
    cp: ControlPlane, prometheus: PrometheusServer, rel: Release
) -> tuple[OperatorProcess, str]:
    """The operator as the chart configures it, with the ServiceAccount's token; and the URL
    of kopf's health endpoint (the chart's probes), on a free loopback port."""
    args, env = chart_configuration(cp, rel)
    health = free_port()
    args.append(f"--liveness=http://127.0.0.1:{health}/healthz")
    proc = OperatorProcess(
        cp,
        prometheus.url,
        [],  # the chart's own --namespace arguments are in args
        log=cp.workdir / "logs" / f"operator-{rel.name}.log",
        interval=1.0,
        extra_env=env,
        extra_args=args,
        kubeconfig=rel.kubeconfig,
    )
    return proc, f"http://127.0.0.1:{health}/healthz"


def test_the_operator_runs_the_whole_loop_with_the_charts_namespaced_permissions(
    control_plane: ControlPlane,
    origin: OriginExporter,
    prometheus: PrometheusServer,
    namespaced_release: Release,
) -> None:
    cp, rel, ns = control_plane, namespaced_release, namespaced_release.app_namespace
    assert f"Serving: {rel.namespace}, {ns} (RBAC scope: namespaced)" in rel.notes
    assert "may read only Secrets named: cloudflare-api-token" in rel.notes
    args, env = chart_configuration(cp, rel)
    assert f"--namespace={ns}" in args
    assert f"--peering={rel.fullname}" not in args  # the chart's default peering name
    assert "--peering=timeout-budget-operator" in args
    assert env["TBO_LOOP_CONFIGMAP"] == f"{rel.fullname}-loop"
    for peering_ns in (ns, rel.namespace):
        kube.get_json(cp, "kopfpeering", "timeout-budget-operator", "-n", peering_ns)

    origin.set_route("chart", p95=110.0, rps=40, host=HOST)
    reroute = {
        "serviceName": "chart",
        "longRunningSelector": {"pool": "long-running"},
        "afterEvaluations": 2,
    }
    apply(cp, ns, deployment("chart", 1), service("chart", {"app": "chart"}))
    apply(cp, ns, budget("chart", "chart", reroute=reroute))
    proc, health_url = run_operator(cp, prometheus, rel)
    try:
        # Scale (deployments/scale), then reroute (services patch) at max replicas.
        kube.wait_for(lambda: spec_replicas(cp, ns, "chart") == 3, 120, "scale-up to 3")
        kube.wait_for(
            lambda: selector_of(cp, ns, "chart") == {"pool": "long-running"}, 60, "reroute"
        )
        # Status (timeoutbudgets/status) and Events (events create).
        st = kube.wait_for(
            lambda: (s := status_of(cp, ns, "chart")).get("rerouted") and s, 30, "status"
        )
        assert st["budgetSeconds"] == 120
        assert st["p95Seconds"] >= 96
        reasons = event_reasons(cp, ns, "chart")
        assert "Scaled" in reasons
        assert "Rerouted" in reasons
        # kopf's health endpoint (the chart's probes) and the metrics endpoint answer.
        assert get_text(health_url)
        text = get_text(proc.metrics_url)
        assert f'timeout_budget_route_state{{name="chart",namespace="{ns}",state=' in text

        # The finalizer (timeoutbudgets patch) restores the Service on delete.
        cp.kubectl("delete", "tb", "chart", "-n", ns, "--timeout=60s")
        assert selector_of(cp, ns, "chart") == {"app": "chart"}
        annotations = kube.get_json(cp, "service", "chart", "-n", ns)["metadata"]["annotations"]
        assert "timeoutbudget.io/original-selector" not in (annotations or {})
        # The loop's ConfigMap was created by the operator and carries kopf's finalizer.
        loop_cm = kube.get_json(cp, "configmap", f"{rel.fullname}-loop", "-n", rel.namespace)
        assert loop_cm["metadata"]["finalizers"]
        assert proc.alive(), proc.output()[-3000:]
        assert forbidden_lines(cp, proc.output()) == [], "the chart's RBAC misses a permission"
    finally:
        proc.stop()


def test_a_cluster_wide_operator_serves_with_the_charts_cluster_role(
    control_plane: ControlPlane,
    origin: OriginExporter,
    prometheus: PrometheusServer,
    cluster_release: Release,
) -> None:
    cp, rel, ns = control_plane, cluster_release, cluster_release.app_namespace
    assert "Serving: every namespace (RBAC scope: cluster)" in rel.notes
    args, _ = chart_configuration(cp, rel)
    assert not [a for a in args if a.startswith("--namespace")]  # kopf's cluster-wide mode
    origin.set_route("wide", p95=110.0, rps=40, host=HOST)
    apply(cp, ns, deployment("wide", 1), budget("wide", "wide"))
    proc, health_url = run_operator(cp, prometheus, rel)
    try:
        kube.wait_for(lambda: spec_replicas(cp, ns, "wide") >= 2, 90, "scale-up")
        assert get_text(health_url)
        kube.wait_for(lambda: status_of(cp, ns, "wide").get("state"), 30, "status")
        assert "Scaled" in event_reasons(cp, ns, "wide")
        cp.kubectl("delete", "tb", "wide", "-n", ns, "--timeout=60s")
        assert proc.alive(), proc.output()[-3000:]
        # Cluster-wide, kopf has all it asks for: not even the expected fallbacks.
        log = proc.output()
        assert [line for line in log.splitlines() if FORBIDDEN.search(line)] == []
    finally:
        proc.stop()


# (verb, resource, namespace or None for the app namespace, expected) for the namespaced
# release. "APP" and "OP" stand for the release's app and operator namespaces.
NAMESPACED_ACCESS = [
    ("patch", "deployments/scale", "APP", True),
    ("patch", "deployments", "APP", True),
    ("list", "deployments", "APP", True),
    ("patch", "horizontalpodautoscalers.autoscaling", "APP", True),
    ("patch", "services", "APP", True),
    ("watch", "ingresses.networking.k8s.io", "APP", True),
    ("patch", "ingresses.networking.k8s.io", "APP", False),  # rbac.ingressWrites is off
    ("list", "httproutes.gateway.networking.k8s.io", "APP", True),
    ("get", "gateways.gateway.networking.k8s.io", "APP", True),
    ("patch", "httproutes.gateway.networking.k8s.io", "APP", False),
    ("get", "gatewayclasses.gateway.networking.k8s.io", "APP", False),  # cluster-scoped
    ("create", "events", "APP", True),
    ("patch", "timeoutbudgets.timeoutbudget.io/status", "APP", True),
    ("get", "secrets/cloudflare-api-token", "APP", True),
    ("create", "configmaps", "OP", True),
    ("delete", "deployments", "APP", False),
    ("create", "deployments", "APP", False),
    ("update", "deployments", "APP", False),
    ("delete", "services", "APP", False),
    ("delete", "timeoutbudgets.timeoutbudget.io", "APP", False),
    ("get", "secrets/database-password", "APP", False),
    ("list", "secrets", "APP", False),
    ("watch", "secrets", "APP", False),
    ("get", "secrets/cloudflare-api-token", "default", False),
    ("patch", "deployments", "default", False),
    ("get", "configmaps/kube-root-ca.crt", "OP", False),
    ("list", "configmaps", "APP", False),
    ("create", "configmaps", "APP", False),
    ("list", "pods", "APP", False),
    ("create", "rolebindings.rbac.authorization.k8s.io", "APP", False),
]


@pytest.mark.parametrize(
    ("verb", "resource", "where", "expected"),
    [
        pytest.param(*access, id=f"{access[0]}-{access[1]}-{access[2]}")
        for access in NAMESPACED_ACCESS
    ],
)
def test_the_namespaced_service_account_may_do_only_what_the_loop_needs(
    control_plane: ControlPlane,
    namespaced_release: Release,
    verb: str,
    resource: str,
    where: str,
    expected: bool,
) -> None:
    rel = namespaced_release
    ns = {"APP": rel.app_namespace, "OP": rel.namespace}.get(where, where)
    assert can_i(control_plane, rel.kubeconfig, verb, resource, "-n", ns) == expected


@pytest.mark.parametrize(
    "query", [("list", "secrets", "-A"), ("list", "namespaces"), ("get", "nodes")], ids=" ".join
)
def test_the_namespaced_service_account_may_not_read_the_cluster(
    control_plane: ControlPlane, namespaced_release: Release, query: tuple[str, ...]
) -> None:
    assert not can_i(control_plane, namespaced_release.kubeconfig, *query)


def test_the_cluster_wide_service_account_reads_only_the_named_token_secrets(
    control_plane: ControlPlane, cluster_release: Release
) -> None:
    cp, rel = control_plane, cluster_release
    sa = rel.kubeconfig
    assert can_i(cp, sa, "get", "secrets/cloudflare-api-token", "-n", "default")
    assert can_i(cp, sa, "list", "configmaps/" + f"{rel.fullname}-loop", "-A")
    assert can_i(cp, sa, "list", "customresourcedefinitions.apiextensions.k8s.io")
    assert not can_i(cp, sa, "get", "secrets/database-password", "-n", rel.app_namespace)
    assert not can_i(cp, sa, "list", "secrets", "-A")
    assert not can_i(cp, sa, "list", "configmaps", "-A")
    assert not can_i(cp, sa, "delete", "deployments", "-n", rel.app_namespace)
    assert not can_i(cp, sa, "create", "configmaps", "-n", rel.app_namespace)
    assert not can_i(cp, sa, "patch", "customresourcedefinitions.apiextensions.k8s.io")


def test_upgrade_then_uninstall_keeps_the_crds_and_the_routes(
    control_plane: ControlPlane,
    helm: Helm,
    prometheus: PrometheusServer,
) -> None:
    cp = control_plane
    op = kube.new_namespace(cp, "tbu")
    name = f"tbu-{op.split('-')[1]}"
    try:
        install(cp, helm, name, op, prometheus.url)
        apply(cp, op, budget("kept", "kept"))
        helm.run(
            "upgrade", name, str(CHART), "--namespace", op, "--reuse-values",
            "--set", "evaluationInterval=30", "--wait",
        )  # fmt: skip
        dep = kube.get_json(cp, "deployment", name, "-n", op)
        env = {
            e["name"]: e.get("value")
            for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert env["TBO_EVALUATION_INTERVAL_SECONDS"] == "30"
        history = json.loads(helm.run("history", name, "-n", op, "-o", "json").stdout)
        assert [h["revision"] for h in history] == [1, 2]

        helm.run("uninstall", name, "--namespace", op, "--wait")
        for crd in ("timeoutbudgets.timeoutbudget.io", "cloudflarezones.timeoutbudget.io"):
            cp.kubectl("get", "crd", crd)
        assert kube.get_json(cp, "tb", "kept", "-n", op)["spec"]["origin"]["deploymentName"]
        assert cp.kubectl("get", "clusterrole", name, check=False).returncode != 0
        assert cp.kubectl("get", "deployment", name, "-n", op, check=False).returncode != 0
    finally:
        helm.run("uninstall", name, "--namespace", op, check=False)
        cp.kubectl("delete", "namespace", op, "--wait=false", check=False)
