"""The namespace lists keep only the fields the loop reads, and nothing the loop needs is lost."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from timeout_budget.clients import kube
from timeout_budget.clients.kube import Fields
from timeout_budget.model import ownership
from timeout_budget.model.spec import parse_timeout_budget, route_key
from timeout_budget.observe import cluster

pytestmark = pytest.mark.unit

KEY = route_key("shop", "api")
SPEC = parse_timeout_budget(
    {
        "route": {"host": "api.example.com", "pathPrefix": "/"},
        "latency": {"metric": "http_request_duration_seconds", "selector": {"route": "api"}},
        "origin": {"deploymentName": "api", "minReplicas": 2, "maxReplicas": 6},
        "reroute": {"serviceName": "api", "longRunningSelector": {"app": "api-long"}},
    }
)


def _meta(name: str, annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": "shop",
        "uid": f"uid-{name}",
        "resourceVersion": "42",
        "annotations": annotations,
        "labels": {"app": name},
        "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}] * 20,
    }


DEPLOYMENT = {
    "metadata": _meta("api", {ownership.BASELINE_REPLICAS: "2"}),
    "spec": {"replicas": 4, "template": {"spec": {"containers": [{"name": "c"}] * 5}}},
    "status": {"readyReplicas": 3, "conditions": [{"type": "Available"}]},
}
HPA = {
    "metadata": _meta("api-hpa", {ownership.BASELINE_MIN_REPLICAS: "2"}),
    "spec": {
        "scaleTargetRef": {"kind": "Deployment", "name": "api", "apiVersion": "apps/v1"},
        "minReplicas": 3,
        "maxReplicas": 9,
        "metrics": [{"type": "Resource"}],
    },
    "status": {"currentReplicas": 4},
}
SERVICE = {
    "metadata": _meta(
        "api",
        {ownership.ORIGINAL_SELECTOR: '{"app": "api"}', ownership.OWNER: KEY},
    ),
    "spec": {"selector": {"app": "api-long"}, "ports": [{"port": 80}], "clusterIP": "10.0.0.1"},
}


INGRESS: dict[str, Any] = {
    "metadata": {
        "name": "api",
        "namespace": "shop",
        "annotations": {"nginx.ingress.kubernetes.io/proxy-read-timeout": "60"},
        "managedFields": [{"manager": "kubectl"}],
    },
    "spec": {
        "ingressClassName": "nginx",
        "rules": [{"host": "api.example.com", "http": {"paths": [{"path": "/"}]}}],
        "tls": [{"hosts": ["api.example.com"], "secretName": "api-tls"}],
    },
    "status": {"loadBalancer": {}},
}


class _Response:
    """What the ``kubernetes`` client returns with ``_preload_content=False``."""

    def __init__(self, *items: dict[str, Any]) -> None:
        self.data = json.dumps({"kind": "List", "items": list(items)}).encode()


class _Lists:
    """Answers the three namespace lists with fixed objects, parsed by the real client's
    code from the bytes the API server would send (no server: a unit test)."""

    async def list_deployments(
        self, namespace: str, fields: Fields | None = None
    ) -> list[dict[str, Any]]:
        return kube._items(_Response(DEPLOYMENT), fields)

    async def list_hpas(self, namespace: str, fields: Fields | None = None) -> list[dict[str, Any]]:
        return kube._items(_Response(HPA), fields)

    async def list_services(
        self, namespace: str, fields: Fields | None = None
    ) -> list[dict[str, Any]]:
        return kube._items(_Response(SERVICE), fields)

    async def list_ingresses(
        self, namespace: str, fields: Fields | None = None
    ) -> list[dict[str, Any]]:
        return kube._items(_Response(INGRESS), fields)


def _read() -> cluster.NamespaceObjects:
    objects = asyncio.run(cluster.read_namespaces(_Lists(), ["shop"]))  # type: ignore[arg-type]
    return objects["shop"]


def test_lists_drop_what_the_loop_never_reads() -> None:
    objs = _read()
    dep = objs.deployments["api"]
    assert "managedFields" not in dep["metadata"]
    assert "labels" not in dep["metadata"]
    assert "template" not in dep["spec"]
    assert "conditions" not in dep["status"]
    assert "metrics" not in objs.hpas[0]["spec"]
    assert "status" not in objs.hpas[0]
    assert set(objs.services["api"]["spec"]) == {"selector"}
    # What the actions need to write safely stays: name and annotations.
    assert objs.services["api"]["metadata"]["name"] == "api"
    assert "resourceVersion" not in objs.services["api"]["metadata"]
    assert objs.services["api"]["metadata"]["annotations"][ownership.OWNER] == KEY


def test_origin_state_is_the_same_from_slim_and_full_objects() -> None:
    full = cluster.NamespaceObjects(
        deployments={"api": DEPLOYMENT}, hpas=[HPA], services={"api": SERVICE}
    )
    slim = cluster.origin_state(KEY, SPEC, _read())
    assert slim == cluster.origin_state(KEY, SPEC, full)
    assert slim.scale.spec_replicas == 4
    assert slim.scale.ready_replicas == 3
    assert slim.scale.hpa is not None
    assert slim.scale.hpa.min_replicas == 3
    assert slim.scale.baseline_replicas == 2
    assert slim.rerouted  # the Service points at the long-running pods, owned by this route


def test_ingresses_keep_only_the_class_rules_and_annotations() -> None:
    (ingress,) = _read().ingresses
    assert "managedFields" not in ingress["metadata"]
    assert "status" not in ingress
    assert set(ingress["spec"]) == {"ingressClassName", "rules"}
    assert ingress["metadata"]["annotations"] == {
        "nginx.ingress.kubernetes.io/proxy-read-timeout": "60"
    }
