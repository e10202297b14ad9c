"""The operator's Kubernetes requests go by path (``clients.kube_paths``) through the
``kubernetes`` client's own request path (its configuration, headers and errors), never
through its typed API classes, whose construction imports hundreds of model classes; and
a write's answer is read to its end (the connection goes back to urllib3's pool) and
dropped, never turned into a model. The client's REST layer is replaced here by one that
answers with real urllib3 responses; the requests themselves run against the real API
server in the integration tests.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import urllib3

from timeout_budget.clients import kube, kube_paths

pytestmark = pytest.mark.unit

OPERATOR_ROOT = Path(__file__).resolve().parents[2] / "operator"

EVENT = {
    "metadata": {"generateName": "web."},
    "involvedObject": {"kind": "TimeoutBudget", "namespace": "shop", "name": "web"},
    "reason": "Scaled",
    "message": "scaled web to 3",
    "type": "Normal",
}
LEASE = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"}}


class Rest:
    """Stands in for ``kubernetes.client.rest.RESTClientObject``: records each request and
    answers it with a urllib3 response whose body has not been read yet."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status, self.body = status, json.dumps(body).encode()
        self.sent: list[tuple[str, str, Any]] = []
        self.answers: list[urllib3.HTTPResponse] = []

    def request(
        self, method: str, url: str, headers: Any = None, body: Any = None, **_: Any
    ) -> Any:
        self.sent.append((method, url, body))
        answer = urllib3.HTTPResponse(
            body=io.BytesIO(self.body),
            status=self.status,
            headers={"Content-Type": "application/json"},
            preload_content=False,
        )
        self.answers.append(answer)
        return kubernetes.client.rest.RESTResponse(answer)

    def close(self) -> None:
        pass


def client(rest: Rest, monkeypatch: pytest.MonkeyPatch) -> kube.Kube:
    api = kubernetes.client.ApiClient(kubernetes.client.Configuration(host="https://k8s.test"))
    api.rest_client = rest

    def no_models(*_: Any, **__: Any) -> Any:
        raise AssertionError("a write's answer was deserialized into the client's models")

    monkeypatch.setattr(api, "deserialize", no_models)
    return kube.Kube(api)


@pytest.mark.parametrize(
    ("write", "method", "path"),
    [
        (
            lambda k: k.scale_deployment("shop", "web", 3),
            "PATCH",
            "/apis/apps/v1/namespaces/shop/deployments/web/scale",
        ),
        (
            lambda k: k.replace_lease("ops", {**LEASE, "metadata": {"name": "l"}}),
            "PUT",
            "/apis/coordination.k8s.io/v1/namespaces/ops/leases/l",
        ),
        (
            lambda k: k.patch_budget_status("shop", "web", {"state": "Healthy"}),
            "PATCH",
            "/apis/timeoutbudget.io/v1alpha1/namespaces/shop/timeoutbudgets/web/status",
        ),
        (
            lambda k: k.create_event("shop", EVENT),
            "POST",
            "/api/v1/namespaces/shop/events",
        ),
    ],
)
def test_a_write_is_sent_and_its_answer_read_to_the_end_not_parsed(
    write: Any, method: str, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rest = Rest(200, {"kind": "Whatever", "metadata": {"name": "web"}, "spec": {"replicas": 3}})
    k = client(rest, monkeypatch)
    assert asyncio.run(write(k)) is None
    [(sent_method, url, _)] = rest.sent
    assert (sent_method, url) == (method, f"https://k8s.test{path}")
    [answer] = rest.answers
    assert answer.read() == b""  # drained: nothing left for the next request on the socket


def test_a_refused_write_raises_the_operators_error(monkeypatch: pytest.MonkeyPatch) -> None:
    status = {"kind": "Status", "status": "Failure", "reason": "Conflict", "code": 409}
    k = client(Rest(409, status), monkeypatch)
    with pytest.raises(kube.Conflict):
        asyncio.run(k.replace_lease("ops", LEASE))
    k = client(Rest(404, {**status, "reason": "NotFound", "code": 404}), monkeypatch)
    with pytest.raises(kube.NotFound):
        asyncio.run(k.scale_deployment("shop", "gone", 2))


def test_a_list_sends_the_api_servers_parameter_names(monkeypatch: pytest.MonkeyPatch) -> None:
    rest = Rest(200, {"items": [], "metadata": {}})
    paths = client(rest, monkeypatch).paths
    paths.list(
        kube.TIMEOUTBUDGETS,
        None,
        label_selector="timeoutbudget.io/shard=1",
        limit=500,
        _continue="abc",
        _preload_content=False,
    )
    paths.list(
        kube_paths.DEPLOYMENTS,
        "shop",
        watch=True,
        resource_version="42",
        allow_watch_bookmarks=True,
        timeout_seconds=300,
    )
    [(_, listed, _), (_, watched, _)] = rest.sent
    assert listed == (
        "https://k8s.test/apis/timeoutbudget.io/v1alpha1/timeoutbudgets"
        "?labelSelector=timeoutbudget.io/shard%3D1&limit=500&continue=abc"
    )
    assert watched == (
        "https://k8s.test/apis/apps/v1/namespaces/shop/deployments"
        "?watch=true&resourceVersion=42&allowWatchBookmarks=true&timeoutSeconds=300"
    )


def test_a_path_quotes_each_segment_and_the_core_group_is_api_v1() -> None:
    secret = kube_paths.SECRETS.path("shop", "cf/token")
    assert secret == "/api/v1/namespaces/shop/secrets/cf%2Ftoken"
    assert kube_paths.LEASES.path("ops") == "/apis/coordination.k8s.io/v1/namespaces/ops/leases"
    assert kube_paths.DEPLOYMENTS.path("shop", "web", "scale") == (
        "/apis/apps/v1/namespaces/shop/deployments/web/scale"
    )
    assert kube.HTTPROUTES.path(None) == "/apis/gateway.networking.k8s.io/v1/httproutes"


def test_building_every_client_imports_none_of_the_kubernetes_models() -> None:
    """In a fresh interpreter, as the operator builds them at start (``app``): no typed API
    class, and no model class beyond the few the client's own modules import."""
    code = """
import sys
import kubernetes
from timeout_budget import route_watch
from timeout_budget.clients import kube, secrets, watch_cache
from timeout_budget.observe import cluster

before = {m for m in sys.modules if m.startswith("kubernetes.client.models.")}
api = kubernetes.client.ApiClient(kubernetes.client.Configuration(host="https://k8s.test"))
kube.Kube(api)
secrets.SecretReader(api)
route_watch.timeoutbudgets(api)
watch_cache.WatchedLists(api, cluster.FIELDS, ["shop"])
after = {m for m in sys.modules if m.startswith("kubernetes.client.")}
print(sorted(m for m in after if m.startswith("kubernetes.client.api.")))
print(sorted(m for m in after - before if m.startswith("kubernetes.client.models.")))
"""
    env = {**os.environ, "PYTHONPATH": str(OPERATOR_ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    apis, models = out.stdout.splitlines()
    assert apis == "[]"
    assert models == "[]"
