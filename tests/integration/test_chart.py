"""The Helm chart as a platform engineer meets it: it lints, renders with default values and
with every option on, and what it renders is accepted by the sandbox's real API server
(server-side dry run, strict field validation); bad values are refused with a message that
says what to change; the pod runs locked down; RBAC grants no verb it does not need; the
alerts are valid PromQL that fire when they should and use only metrics the operator
exports."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from sandbox import binaries
from sandbox.controlplane import ControlPlane
from tests.support import kube
from tests.support.helm import CHART, CI_VALUES, Helm, documents, find, kinds
from timeout_budget.report.metrics import OperatorMetrics

pytestmark = pytest.mark.integration

ALL_OPTIONS = CI_VALUES / "all-options-values.yaml"
NAMESPACED = CI_VALUES / "namespaced-values.yaml"
MONITORING_CRDS = (
    Path(__file__).resolve().parents[1] / "support/manifests/monitoring-crds-subset.yaml"
)
PROMTOOL = "/usr/bin/promtool"


@pytest.fixture(scope="module")
def helm() -> Helm:
    try:
        bins = binaries.ensure(build=True)
    except binaries.BinariesUnavailable as exc:
        pytest.skip(f"sandbox binaries unavailable: {exc}")
    return Helm(bins.helm)


@pytest.fixture(scope="module")
def monitoring_crds(control_plane: ControlPlane) -> None:
    """ServiceMonitor and PrometheusRule (a strict subset, see the file) and kopf's peering."""
    cp = control_plane
    cp.kubectl("apply", "--server-side", "-f", str(MONITORING_CRDS))
    cp.kubectl("apply", "--server-side", "-f", str(kube.CRDS / "peering" / "kopf-peering.yaml"))
    for crd in (
        "servicemonitors.monitoring.coreos.com",
        "prometheusrules.monitoring.coreos.com",
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    ):
        cp.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")


@pytest.mark.parametrize(
    "values", [[], [ALL_OPTIONS], [NAMESPACED]], ids=["defaults", "all-options", "namespaced"]
)
def test_lint_is_clean(helm: Helm, values: list[Path]) -> None:
    argv = ["lint", str(CHART), "--strict", "--kube-version", "1.37.2"]
    for path in values:
        argv += ["--values", str(path)]
    result = helm.run(*argv)
    assert "0 chart(s) failed" in result.stdout


def test_defaults_render_a_cluster_wide_operator(helm: Helm) -> None:
    docs = helm.render()
    assert kinds(docs) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ]
    deployment = find(docs, "Deployment")
    assert deployment["spec"]["strategy"]["type"] == "Recreate"  # never two active operators
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["--liveness=http://0.0.0.0:8080/healthz", "--log-format=plain"]


def test_every_option_renders(helm: Helm) -> None:
    docs = helm.render(ALL_OPTIONS)
    assert kinds(docs) == [
        "ClusterKopfPeering",
        "ClusterRole",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "PrometheusRule",
        "Role",
        "Role",
        "RoleBinding",
        "RoleBinding",
        "RoleBinding",
        "RoleBinding",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
    ]
    deployment = find(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert container["image"].endswith("@sha256:" + "0123456789abcdef" * 4)
    assert "--peering=tbo-peering" in container["args"]
    assert "--verbose" in container["args"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["TBO_PROMETHEUS_BEARER_TOKEN_FILE"] == (
        "/var/run/secrets/timeoutbudget.io/prometheus-token/token"
    )
    assert env["TBO_PROMETHEUS_CA_FILE"] == "/var/run/secrets/timeoutbudget.io/prometheus-ca/ca.crt"
    assert env["TBO_DRY_RUN"] == "true"
    assert env["TBO_EVALUATION_INTERVAL_SECONDS"] == "30"
    assert env["TBO_READING_REFRESH_SECONDS"] == "30"
    assert env["TBO_CLOUDFLARE_BASE_URL"] == "https://cloudflare-proxy.internal/client/v4"
    assert env["TBO_CLOUDFLARE_REQUEST_BUDGET"] == "300"
    assert env["TBO_PEERING_LIFETIME_SECONDS"] == "20"
    assert env["TBO_METRICS_PORT"] == "9464"
    assert env["TBO_PROMETHEUS_MAX_CONCURRENCY"] == "8"
    assert env["TBO_INGRESS_NGINX_CONFIGMAP"] == "ingress-nginx/ingress-nginx-controller"
    nginx_config = find(docs, "Role", "tbo-ingress-nginx-config")
    assert nginx_config["metadata"]["namespace"] == "ingress-nginx"
    assert rules_of(nginx_config) == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["ingress-nginx-controller"],
            "verbs": ["get"],
        }
    ]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["prometheus-token"]["readOnly"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["prometheus-ca"]["secret"]["secretName"] == "prometheus-ca"
    monitor = find(docs, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True
    dashboard = find(docs, "ConfigMap", "tbo-dashboard")
    assert json.loads(dashboard["data"]["timeout-budget-operator.json"])["panels"]


def test_sharding_renders_replicas_that_each_hold_their_shards(helm: Helm) -> None:
    docs = helm.render(sets=["replicas=3", "sharding.enabled=true", "sharding.shards=16"])
    deployment = find(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert not [a for a in container["args"] if a.startswith("--peering")]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["TBO_SHARDS"] == "16"
    assert env["TBO_LEADER_LEASE_SECONDS"] == "15"
    # The start's label sweep (90 s by default) fits inside the startup probe's wait.
    assert env["TBO_LABEL_SWEEP_SECONDS"] == "90"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 90 + 60
    longer = helm.render(
        sets=["replicas=3", "sharding.enabled=true", "sharding.labelSweepSeconds=600"]
    )
    probe = find(longer, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert probe["startupProbe"]["periodSeconds"] * probe["startupProbe"]["failureThreshold"] >= 660
    assert "KopfPeering" not in kinds(docs)
    loop_role = find(docs, "Role", "tbo-timeout-budget-operator-loop")
    assert {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "verbs": ["create", "list", "update", "delete"],
    } in rules_of(loop_role)


def test_pod_runs_locked_down(helm: Helm) -> None:
    pod = find(helm.render(), "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]
    ctx = container["securityContext"]
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["requests"]["cpu"]
    assert container["resources"]["limits"]["memory"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["startupProbe"]["failureThreshold"] == 60  # two minutes, unsharded
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 9090, "health": 8080}


def rules_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return list(doc.get("rules", []))


def test_rbac_grants_only_what_the_loop_needs(helm: Helm) -> None:
    docs = helm.render()
    cluster_role = find(docs, "ClusterRole")
    verbs = {v for rule in rules_of(cluster_role) for v in rule["verbs"]}
    assert verbs == {"list", "watch", "patch", "create", "get"}
    for rule in rules_of(cluster_role):
        assert "*" not in rule["resources"]
        assert "*" not in rule["apiGroups"]
        if "secrets" in rule["resources"]:
            assert rule["verbs"] == ["get"]
            assert rule["resourceNames"] == ["cloudflare-api-token"]
        if "configmaps" in rule["resources"]:
            assert rule["resourceNames"] == ["tbo-timeout-budget-operator-loop"]
        if "create" in rule["verbs"]:
            assert rule["resources"] == ["events"]
    loop_role = find(docs, "Role", "tbo-timeout-budget-operator-loop")
    assert rules_of(loop_role) == [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]}
    ]


def test_ingress_writes_only_when_asked(helm: Helm) -> None:
    """``chain.sync`` needs get and patch on Ingresses: granted with rbac.ingressWrites only."""

    def ingress_verbs(docs: list[dict[str, Any]]) -> set[str]:
        rules = rules_of(find(docs, "ClusterRole"))
        return {v for r in rules if "ingresses" in r["resources"] for v in r["verbs"]}

    assert ingress_verbs(helm.render()) == {"list", "watch"}
    assert ingress_verbs(helm.render(sets=["rbac.ingressWrites=true"])) == {
        "list",
        "watch",
        "get",
        "patch",
    }


def test_namespaced_scope_creates_nothing_cluster_wide(helm: Helm) -> None:
    docs = helm.render(NAMESPACED)
    assert not [d for d in docs if d["kind"].startswith("Cluster")]
    roles = {d["metadata"]["namespace"] for d in docs if d["kind"] == "Role"}
    assert roles == {"shop", "payments", "tbo-system"}
    peerings = {d["metadata"]["namespace"] for d in docs if d["kind"] == "KopfPeering"}
    assert peerings == {"shop", "payments", "tbo-system"}
    shop = next(d for d in docs if d["kind"] == "Role" and d["metadata"]["namespace"] == "shop")
    secrets = [r for r in rules_of(shop) if "secrets" in r["resources"]]
    assert secrets == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]


BAD_VALUES = [
    (["replicas=3"], "replicas=3 needs peering.enabled=true or sharding.enabled=true"),
    (
        ["peering.enabled=true", "sharding.enabled=true"],
        "peering.enabled and sharding.enabled exclude each other",
    ),
    (["sharding.shards=1"], "at '/sharding/shards': minimum: got 1, want 2"),
    (["rbac.scope=namespaced"], "rbac.scope=namespaced needs watchNamespaces"),
    (["rbac.scope=everywhere"], "at '/rbac/scope': value must be one of 'cluster', 'namespaced'"),
    (["prometheus.url=prometheus:9090"], "at '/prometheus/url': 'prometheus:9090' does not match"),
    (["evaluationInterval=0"], "at '/evaluationInterval': minimum: got 0, want 1"),
    (["logFormat=xml"], "at '/logFormat': value must be one of 'plain', 'full', 'json'"),
    (["watchNamespaces={Shop}"], "at '/watchNamespaces/0': 'Shop' does not match"),
    (["cloudflare.requestBudget=5000"], "at '/cloudflare/requestBudget': maximum: got 5,000"),
    (["metrics.port=8080"], "metrics.port and healthPort are both 8080"),
    (["metrics.serviceMonitor.interval=30"], "at '/metrics/serviceMonitor/interval'"),
    (["replica=2"], "additional properties 'replica' not allowed"),
    (["image.digest=latest"], "at '/image/digest': 'latest' does not match"),
    (
        ["prometheus.insecureSkipVerify=true", "prometheus.caSecret.name=ca"],
        "prometheus.insecureSkipVerify and prometheus.caSecret exclude each other",
    ),
    (
        ["metrics.service.enabled=false", "metrics.serviceMonitor.enabled=true"],
        "metrics.serviceMonitor.enabled needs metrics.service.enabled",
    ),
]


@pytest.mark.parametrize(("sets", "message"), BAD_VALUES, ids=[b[0][0] for b in BAD_VALUES])
def test_bad_values_are_refused_with_a_clear_message(
    helm: Helm, sets: list[str], message: str
) -> None:
    result = helm.template(sets=sets, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


# -- against the real API server ----------------------------------------------------------
@pytest.fixture
def namespaces(control_plane: ControlPlane) -> Iterator[list[str]]:
    names = [kube.new_namespace(control_plane, prefix) for prefix in ("op", "shop", "pay")]
    yield names
    for name in names:
        control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.mark.parametrize(
    "values", [[], [ALL_OPTIONS], [NAMESPACED]], ids=["defaults", "all-options", "namespaced"]
)
def test_the_api_server_accepts_every_rendered_manifest(
    helm: Helm,
    control_plane: ControlPlane,
    monitoring_crds: None,
    namespaces: list[str],
    values: list[Path],
) -> None:
    op, shop, pay = namespaces
    sets = [f"fullnameOverride=tbo-{op}"]  # cluster-scoped names must not collide
    if values:
        sets.append(f"watchNamespaces={{{shop},{pay}}}" if values[0] == NAMESPACED else "")
        if values[0] == ALL_OPTIONS:
            sets += [f"cloudflare.tokenSecretNamespaces={{{shop},{pay}}}", f"peering.name={op}"]
            sets.append(f"ingressNginx.configMap={shop}/ingress-nginx-controller")
    rendered = helm.template(*values, sets=[s for s in sets if s], namespace=op).stdout
    result = control_plane.kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-f", "-", input_text=rendered
    )
    applied = [line for line in result.stdout.splitlines() if "(server dry run)" in line]
    assert len(applied) == len(documents(rendered)), result.stdout
    assert not result.stderr.strip(), result.stderr  # strict: not even a warning


def test_a_misspelt_field_would_be_caught(
    control_plane: ControlPlane, monitoring_crds: None
) -> None:
    """The subset CRDs are strict, so the dry run above means something."""
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "typo", "namespace": "default"},
        "spec": {"selector": {}, "endpoints": [{"port": "metrics", "honourLabels": True}]},
    }
    result = control_plane.kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-f", "-",
        input_text=json.dumps(monitor), check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert 'unknown field "spec.endpoints[0].honourLabels"' in result.stderr


# -- alerts and dashboard ------------------------------------------------------------------
def exported_metric_names() -> set[str]:
    names: set[str] = set()
    for family in OperatorMetrics(CollectorRegistry()).registry.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + s for s in ("_bucket", "_sum", "_count"))
    return names


def metric_names_in(expr: str) -> set[str]:
    return set(re.findall(r"\btimeout_budget_[a-z0-9_]+", expr))


def test_alerts_and_dashboard_use_only_exported_metrics(helm: Helm) -> None:
    docs = helm.render(ALL_OPTIONS)
    exported = exported_metric_names()
    rule = find(docs, "PrometheusRule")
    exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    dashboard = json.loads(find(docs, "ConfigMap")["data"]["timeout-budget-operator.json"])
    exprs += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = set().union(*(metric_names_in(e) for e in exprs))
    assert used
    assert used <= exported, used - exported
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {
        "TimeoutBudgetRouteAtRisk",
        "TimeoutBudgetRouteBreaching",
        "TimeoutBudgetMetricsUnavailable",
        "TimeoutBudgetCloudflareSyncFailing",
    } <= alerts


PROMTOOL_TESTS = """
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'timeout_budget_route_state{namespace="shop", name="checkout", state="AtRisk"}'
        values: '1x20'
      - series: 'timeout_budget_route_state{namespace="shop", name="search", state="Healthy"}'
        values: '1x20'
      - series: 'timeout_budget_latency_readings{outcome="MetricsUnavailable"}'
        values: '0x5 3x15'
      - series: 'timeout_budget_route_edge_synced{namespace="shop", name="checkout"}'
        values: '1x5 0x25'
      - series: 'timeout_budget_evaluation_last_success_timestamp_seconds{job="tbo"}'
        values: '0+60x5 300x15'
    alert_rule_test:
      - eval_time: 5m
        alertname: TimeoutBudgetRouteAtRisk
        exp_alerts: []
      - eval_time: 12m
        alertname: TimeoutBudgetRouteAtRisk
        exp_alerts:
          - exp_labels: {severity: warning, namespace: shop, name: checkout, state: AtRisk}
            exp_annotations:
              summary: Route shop/checkout is at risk of Cloudflare 524 errors
              description: >-
                P95 has stayed at or above atRiskRatio x budget despite the operator's
                scaling. "kubectl describe tb -n shop checkout" shows what it did and why.
      - eval_time: 12m
        alertname: TimeoutBudgetRouteBreaching
        exp_alerts: []
      - eval_time: 17m
        alertname: TimeoutBudgetMetricsUnavailable
        exp_alerts:
          - exp_labels: {severity: warning, outcome: MetricsUnavailable}
            exp_annotations:
              summary: 3 routes have no latency reading (MetricsUnavailable)
              description: >-
                The operator cannot read these routes' latency from Prometheus, so it holds
                them as they are (no scaling, no recovery). The routes' MetricsAvailable
                condition carries Prometheus' error.
      - eval_time: 19m
        alertname: TimeoutBudgetCloudflareSyncFailing
        exp_alerts: []
      - eval_time: 22m
        alertname: TimeoutBudgetCloudflareSyncFailing
        exp_alerts:
          - exp_labels: {severity: warning, namespace: shop, name: checkout}
            exp_annotations:
              summary: Cloudflare settings of shop/checkout are not in sync
              description: >-
                The EdgeSynced condition is False: the Cache Rule read timeout or DNS-only
                switch could not be applied (token, plan, rule quota, Cloudflare down).
                kubectl describe shows the reason.
      - eval_time: 4m
        alertname: TimeoutBudgetEvaluationStalled
        exp_alerts: []
      - eval_time: 15m
        alertname: TimeoutBudgetEvaluationStalled
        exp_alerts:
          - exp_labels: {severity: critical, job: tbo}
            exp_annotations:
              summary: No evaluation cycle completed for over 10m 0s
              description: >-
                The operator's loop is not running (no active replica, or every cycle
                fails); routes are neither protected nor reported. Check the operator's logs.
"""


def test_alerts_are_valid_promql_and_fire_when_they_should(helm: Helm, tmp_path: Path) -> None:
    if not Path(PROMTOOL).exists():
        pytest.skip("promtool not installed (sandbox/install-system-deps.sh installs it)")
    rule = find(helm.render(sets=["metrics.prometheusRule.enabled=true"]), "PrometheusRule")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    checked = subprocess.run(
        [PROMTOOL, "check", "rules", "rules.yaml"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 7 rules found" in checked.stdout
    (tmp_path / "tests.yaml").write_text(PROMTOOL_TESTS)
    tested = subprocess.run(
        [PROMTOOL, "test", "rules", "tests.yaml"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_plain_helm_template_renders_as_gitops_tools_run_it(tmp_path: Path) -> None:
    """`helm template` with no cluster, no --kube-version and no values: Helm then assumes
    Kubernetes 1.20, which a chart kubeVersion of >=1.29 refused (Argo CD and Flux render
    charts this way)."""
    bins = binaries.ensure(build=True)
    nowhere = {"KUBECONFIG": str(tmp_path / "no-kubeconfig"), "PATH": "/usr/bin:/bin"}
    result = Helm(bins.helm, nowhere).run("template", "tbo", str(CHART))
    assert "Deployment" in kinds(documents(result.stdout))


def test_the_version_check_refuses_an_old_live_cluster_only(
    helm: Helm, control_plane: ControlPlane
) -> None:
    """Against a live cluster (lookup answers) a Kubernetes older than 1.29 is refused with
    a sentence; the very same version without a cluster renders."""
    live = Helm(helm.binary, control_plane.env())
    argv = ["template", "tbo", str(CHART), "--kube-version", "1.28.9"]
    offline = live.run(*argv)
    assert "Deployment" in kinds(documents(offline.stdout))
    refused = live.run(*argv, "--dry-run=server", check=False)
    assert refused.returncode != 0
    assert "needs Kubernetes 1.29 or newer (found v1.28.9)" in refused.stderr
    # helm install reads the live cluster's own version (1.37 here).
    ns = kube.new_namespace(control_plane, "ver")
    try:
        current = live.run("install", "tbo", str(CHART), "-n", ns, "--dry-run=server")
        assert "STATUS: pending-install" in current.stdout
    finally:
        control_plane.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_plain_helm_install_with_defaults_works(
    helm: Helm, control_plane: ControlPlane, namespaces: list[str]
) -> None:
    """`helm install` with the chart's defaults only, into the real API server (1.37)."""
    op = namespaces[0]
    live = Helm(helm.binary, control_plane.env())
    name = f"plain-{op}"[:40]
    live.run("install", name, str(CHART), "--namespace", op)
    try:
        status = json.loads(live.run("status", name, "--namespace", op, "-o", "json").stdout)
        assert status["info"]["status"] == "deployed"
        deployments = kube.get_json(control_plane, "deployments", "-n", op)["items"]
        assert [d["metadata"]["name"] for d in deployments] == [f"{name}-timeout-budget-operator"]
    finally:
        live.run("uninstall", name, "--namespace", op, check=False)
