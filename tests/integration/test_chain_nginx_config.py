"""ingress-nginx's controller ConfigMap in the timeout chain, on the real API server: an
Ingress without annotations gets the ConfigMap's read timeout (source ``configMap``), a
change to the ConfigMap is followed, and an unreadable one makes the hop unknown."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from sandbox.controlplane import ControlPlane
from sandbox.origin_exporter import OriginExporter
from sandbox.prometheus import PrometheusServer
from tests.support import kube
from tests.support import operator as operator_process
from tests.support.objects import HOST, apply, budget, chain_of, deployment, ingress, status_of
from tests.support.operator import OperatorProcess

pytestmark = pytest.mark.integration

NS_PREFIX = "nginxcm"
CONFIGMAP = "ingress-nginx-controller"


@pytest.fixture(scope="module")
def operator(
    control_plane: ControlPlane, prometheus: PrometheusServer, ns: str
) -> Iterator[OperatorProcess]:
    """The operator told where ingress-nginx's ConfigMap is (here, in the test's own
    namespace)."""
    env = {"TBO_INGRESS_NGINX_CONFIGMAP": f"{ns}/{CONFIGMAP}"}
    yield from operator_process.running(
        operator_process.start(control_plane, prometheus.url, ns, NS_PREFIX, env=env)
    )


def set_configmap(cp: ControlPlane, ns: str, **data: str) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CONFIGMAP}, "data": data}
    cp.kubectl("apply", "-n", ns, "-f", "-", input_text=json.dumps(body))


def test_the_controllers_configmap_sets_the_default(
    control_plane: ControlPlane, origin: OriginExporter, operator: OperatorProcess, ns: str
) -> None:
    cp = control_plane
    set_configmap(cp, ns, **{"proxy-read-timeout": "150"})
    origin.set_route("bulk", p95=10.0, rps=20, host=HOST)
    plain = ingress("bulk", "/bulk", "60")
    del plain["metadata"]["annotations"]  # no annotation: the controller's default applies
    apply(cp, ns, plain, deployment("bulk", 1), budget("bulk", "bulk", chain={}))
    kube.wait_for(
        lambda: (
            chain_of(cp, ns, "bulk") == [("cloudflare", 120, "Ok"), ("ingress-nginx", 150, "Ok")]
        ),
        60,
        "the ConfigMap's 150 s",
    )
    assert status_of(cp, ns, "bulk")["chain"][1]["source"] == f"configMap {ns}/{CONFIGMAP}"
    # 90 s, tried once (3 tries of 90 s would run past Cloudflare's 120 s instead).
    set_configmap(cp, ns, **{"proxy-read-timeout": "90", "proxy-next-upstream-tries": "1"})
    kube.wait_for(
        lambda: (
            chain_of(cp, ns, "bulk")
            == [("cloudflare", 120, "Ok"), ("ingress-nginx", 90, "FiresFirst")]
        ),
        60,
        "the changed ConfigMap followed",
    )
    cp.kubectl("delete", "configmap", CONFIGMAP, "-n", ns)
    kube.wait_for(
        lambda: (
            chain_of(cp, ns, "bulk")
            == [("cloudflare", 120, "Ok"), ("ingress-nginx", None, "Unknown")]
        ),
        60,
        "unknown once the ConfigMap is gone",
    )
    assert "not read" in status_of(cp, ns, "bulk")["chain"][1]["source"]
