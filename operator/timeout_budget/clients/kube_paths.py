"""Kubernetes API requests by path, sent through the ``kubernetes`` client's ``ApiClient``.

The operator reads and writes plain JSON (``_preload_content=False`` everywhere), so the
client's typed API classes gave it nothing but their request paths. They cost memory:
building ``CoreV1Api``, ``AppsV1Api``, ``NetworkingV1Api``, ``AutoscalingV2Api``,
``CoordinationV1Api`` and ``CustomObjectsApi`` imports the model class of every kind they
can answer with, ~31 MiB of RSS in each replica (CoreV1Api 13.9, AppsV1Api 11.0,
NetworkingV1Api 3.5; measured on kubernetes 37.0.2), for code that never runs.

``KubePaths`` sends the same requests through the same ``ApiClient`` (its configuration,
credentials, TLS, default headers and client-go style retries) by path, and hands back
the answer unread (a urllib3 response): a caller parses it, streams it (a watch) or drains
it. An answer that is not 2xx raises ``ApiException`` as the typed methods do, so
``kube_errors.translate`` reads it alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import kubernetes
from kubernetes.client.exceptions import ApiException

QUERY_NAMES = {
    "label_selector": "labelSelector",
    "field_selector": "fieldSelector",
    "resource_version": "resourceVersion",
    "timeout_seconds": "timeoutSeconds",
    "allow_watch_bookmarks": "allowWatchBookmarks",
    "watch": "watch",
    "limit": "limit",
    "_continue": "continue",
    "field_manager": "fieldManager",
    "force": "force",
}
"""The typed methods' keyword arguments the operator uses, by their query parameter."""

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
"""What the typed methods sent for an object patch of a built-in kind."""
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


@dataclass(frozen=True)
class Resource:
    """One kind's collection: ``group`` is ``""`` for the core API (``/api/v1``)."""

    group: str
    version: str
    plural: str

    def path(self, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        segments = ["namespaces", namespace] if namespace is not None else []
        segments.append(self.plural)
        if name is not None:
            segments.append(name)
        if sub:
            segments.append(sub)
        return root + "".join(f"/{quote(s, safe='')}" for s in segments)


DEPLOYMENTS = Resource("apps", "v1", "deployments")
HPAS = Resource("autoscaling", "v2", "horizontalpodautoscalers")
SERVICES = Resource("", "v1", "services")
INGRESSES = Resource("networking.k8s.io", "v1", "ingresses")
CONFIGMAPS = Resource("", "v1", "configmaps")
SECRETS = Resource("", "v1", "secrets")
EVENTS = Resource("", "v1", "events")
LEASES = Resource("coordination.k8s.io", "v1", "leases")


class KubePaths:
    """Requests by path through one ``ApiClient``; every method blocks (run it in a worker
    thread) and returns the answer unread."""

    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self.api_client = api_client

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        content_type: str | None = None,
        **params: Any,
    ) -> Any:
        """Send ``method`` to ``path`` with ``params`` (the typed methods' keyword names:
        ``label_selector``, ``watch``, ``_continue``..., and ``_request_timeout``); raises
        ``ApiException`` unless the answer is 2xx."""
        timeout = params.pop("_request_timeout", None)
        params.pop("_preload_content", None)  # always: the answer is returned unread
        query = [(QUERY_NAMES[k], v) for k, v in params.items() if v is not None]
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        serialized = self.api_client.param_serialize(
            method=method,
            resource_path=path,
            query_params=query,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        answer: Any = self.api_client.call_api(*serialized, _request_timeout=timeout)
        if not 200 <= answer.status <= 299:
            answer.read()
            raise ApiException.from_response(http_resp=answer, body=None, data=None)
        return answer.response

    def list(self, resource: Resource, namespace: str | None = None, **params: Any) -> Any:
        """A list (or, with ``watch=True``, a watch) of ``namespace`` or the whole cluster."""
        return self.request("GET", resource.path(namespace), **params)

    def get(self, resource: Resource, namespace: str | None, name: str) -> Any:
        return self.request("GET", resource.path(namespace, name))

    def create(self, resource: Resource, namespace: str, body: Mapping[str, Any]) -> Any:
        return self.request("POST", resource.path(namespace), body)

    def replace(self, resource: Resource, namespace: str, name: str, body: object) -> Any:
        return self.request("PUT", resource.path(namespace, name), body)

    def patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        body: object,
        content_type: str,
        sub: str = "",
        **params: Any,
    ) -> Any:
        path = resource.path(namespace, name, sub)
        return self.request("PATCH", path, body, content_type, **params)

    def delete(self, resource: Resource, namespace: str, name: str) -> Any:
        return self.request("DELETE", resource.path(namespace, name))
