"""The CRDs as users meet them: the real API server accepts the samples, rejects bad
resources with messages a user understands, and `kubectl` documents and lists them."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from sandbox.controlplane import ControlPlane
from tests.support import kube
from tests.support.crd_cases import BAD_RESOURCES

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("resource", "message"),
    [pytest.param(r, m, id=i) for i, r, m in BAD_RESOURCES],
)
def test_bad_resource_is_rejected_by_the_api_server(
    control_plane: ControlPlane, namespace: str, resource: dict[str, Any], message: str
) -> None:
    result = control_plane.kubectl(
        "apply", "-n", namespace, "-f", "-", input_text=json.dumps(resource), check=False
    )
    assert result.returncode != 0, f"accepted: {result.stdout}"
    assert "is invalid" in result.stderr
    assert message in result.stderr, result.stderr
    # Nothing was stored.
    kind = resource["kind"].lower()
    listed = kube.get_json(control_plane, kind, "-n", namespace)
    assert listed["items"] == []


def test_every_sample_applies_with_defaults(control_plane: ControlPlane, namespace: str) -> None:
    out = control_plane.kubectl("apply", "-n", namespace, "-f", str(kube.SAMPLES))
    assert "timeoutbudget.timeoutbudget.io/api created" in out.stdout
    assert "cloudflarezone.timeoutbudget.io/example-com created" in out.stdout
    sample_names = set()
    for path in kube.SAMPLES.glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "TimeoutBudget":
                sample_names.add(doc["metadata"]["name"])
    stored = kube.get_json(control_plane, "timeoutbudgets", "-n", namespace)["items"]
    assert {item["metadata"]["name"] for item in stored} == sample_names
    search = next(i for i in stored if i["metadata"]["name"] == "search")
    # Defaults applied by the API server.
    assert search["spec"]["route"]["pathPrefix"] == "/"
    assert search["spec"]["route"]["methods"] == ["GET", "HEAD"]
    assert search["spec"]["budget"] == {"atRiskRatio": 0.8, "recoverRatio": 0.6}
    assert search["spec"]["latency"]["quantile"] == 0.95
    assert search["spec"]["latency"]["signal"] == "ttfb"
    assert search["spec"]["edge"]["sync"] is True
    assert search["spec"]["paused"] is False


def test_kubectl_get_tb_shows_printer_columns(control_plane: ControlPlane, namespace: str) -> None:
    control_plane.kubectl("apply", "-n", namespace, "-f", str(kube.SAMPLES / "export-route.yaml"))
    status = {
        "status": {"p95Seconds": 42.5, "budgetSeconds": 360, "state": "Healthy", "replicas": 2}
    }
    control_plane.kubectl(
        "patch", "tb", "export", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps(status),
    )  # fmt: skip
    out = control_plane.kubectl("get", "tb", "-n", namespace).stdout.splitlines()
    assert out[0].split() == ["NAME", "HOST", "PATH", "P95", "BUDGET", "STATE", "REPLICAS", "AGE"]
    row = out[1].split()
    assert row[:7] == ["export", "api.example.com", "/export", "42.5", "360", "Healthy", "2"]


def test_kubectl_explain_documents_fields(control_plane: ControlPlane) -> None:
    out = control_plane.kubectl("explain", "tb.spec.budget.recoverRatio").stdout
    assert "Release (undo reroute, scale down) only below this fraction" in out
    out = control_plane.kubectl("explain", "cloudflarezone.spec.zoneId").stdout
    assert "32 lowercase hex characters" in out


def test_api_server_reports_its_real_version(control_plane: ControlPlane) -> None:
    out = json.loads(control_plane.kubectl("version", "-o", "json").stdout)
    want = control_plane.binaries.versions["K8S_VERSION"]
    assert out["serverVersion"]["gitVersion"] == want
    assert out["clientVersion"]["gitVersion"] == want
