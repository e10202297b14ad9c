"""The operator's one seam to the Kubernetes API for its own reads and writes.

kopf watches the custom resources; everything else the loop touches (Deployments, their
scale subresource, HPAs, Services, the TimeoutBudget status) goes through this class.
Requests go by path (``kube_paths``) through the official ``kubernetes`` client's
``ApiClient``, as JSON in and out: reads are parsed (and slimmed) here, writes' answers are
drained unread. The client is synchronous, so every call runs in a worker thread
(``asyncio.to_thread``) and never blocks the event loop. Errors are translated into the
operator's own exceptions so callers need not know the client library:

    KubeError
    ├── NotFound        the object does not exist (a user's reference to fix)
    ├── Conflict        409: someone else wrote first; retried by the caller
    └── KubeUnavailable connection errors and 5xx; retried next cycle
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, TypeVar

import kubernetes

from timeout_budget.clients.kube_errors import Conflict as Conflict
from timeout_budget.clients.kube_errors import KubeError as KubeError
from timeout_budget.clients.kube_errors import KubeUnavailable as KubeUnavailable
from timeout_budget.clients.kube_errors import NotFound as NotFound
from timeout_budget.clients.kube_errors import translate as _translate
from timeout_budget.clients.kube_paths import (
    APPLY_PATCH,
    CONFIGMAPS,
    DEPLOYMENTS,
    EVENTS,
    HPAS,
    INGRESSES,
    JSON_PATCH,
    LEASES,
    MERGE_PATCH,
    SERVICES,
    STRATEGIC_MERGE_PATCH,
    KubePaths,
    Resource,
)

T = TypeVar("T")

GROUP = "timeoutbudget.io"
VERSION = "v1alpha1"
PLURAL = "timeoutbudgets"


def load_api_client(
    kubeconfig: str | None = None, connections: int | None = None
) -> kubernetes.client.ApiClient:
    """In-cluster config when running in a pod, else the kubeconfig (``$KUBECONFIG``).

    ``connections``: the connection pool's size (the client's default is 5 per core).
    """
    config = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=config)
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(config_file=kubeconfig, client_configuration=config)
    if connections is not None:
        config.connection_pool_maxsize = connections
    return kubernetes.client.ApiClient(configuration=config)


class Kube:
    """Async facade over the parts of the Kubernetes API the loop needs."""

    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self.paths = KubePaths(api_client)

    async def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except Exception as exc:  # translated: callers see only KubeError
            raise _translate(exc, what) from exc

    async def _write(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """A write whose answer the operator does not read (``fn``: a ``KubePaths``
        method). Refusals raise as from ``_call``; the answer's body is read to its end, so
        the connection goes back to the pool, and never parsed."""

        def call() -> None:
            response = fn(*args, **kwargs)
            response.drain_conn()
            response.release_conn()

        await self._call(what, call)

    # -- reads --------------------------------------------------------------------------
    async def list_deployments(
        self, namespace: str, fields: Fields | None = None
    ) -> list[dict[str, Any]]:
        return await self._list(
            f"list deployments in {namespace}",
            partial(self.paths.list, DEPLOYMENTS),
            namespace,
            fields,
        )

    async def list_hpas(self, namespace: str, fields: Fields | None = None) -> list[dict[str, Any]]:
        return await self._list(
            f"list horizontalpodautoscalers in {namespace}",
            partial(self.paths.list, HPAS),
            namespace,
            fields,
        )

    async def list_services(
        self, namespace: str, fields: Fields | None = None
    ) -> list[dict[str, Any]]:
        return await self._list(
            f"list services in {namespace}", partial(self.paths.list, SERVICES), namespace, fields
        )

    async def list_ingresses(
        self, namespace: str, fields: Fields | None = None
    ) -> list[dict[str, Any]]:
        return await self._list(
            f"list ingresses in {namespace}",
            partial(self.paths.list, INGRESSES),
            namespace,
            fields,
        )

    async def list_httproutes(self, namespace: str) -> list[dict[str, Any]]:
        """gateway.networking.k8s.io/v1 HTTPRoutes (``NotFound`` without the CRDs)."""

        return await self._list(
            f"list httproutes in {namespace}",
            partial(self.paths.list, HTTPROUTES),
            namespace,
            HTTPROUTE_FIELDS,
        )

    async def get_httproute(self, namespace: str, name: str) -> dict[str, Any]:
        return await self._get_custom(
            f"get httproute {namespace}/{name}", namespace, "httproutes", name
        )

    async def write_httproute(
        self,
        namespace: str,
        name: str,
        rules: list[dict[str, Any]],
        annotations: dict[str, str | None],
        manager: str,
        apply: bool,
        resource_version: str | None = None,
    ) -> None:
        """The HTTPRoute's ``spec.rules`` (an atomic list: written whole) and annotations:
        server-side apply as ``manager`` (``apply``), else a merge patch; with
        ``resource_version``, only onto that version (else ``Conflict``)."""
        body: dict[str, Any] = {"metadata": {"annotations": annotations}, "spec": {"rules": rules}}
        if resource_version is not None:
            body["metadata"]["resourceVersion"] = resource_version
        options: dict[str, Any] = {"field_manager": manager}
        if apply:
            body |= {"apiVersion": f"{GATEWAY_GROUP}/v1", "kind": "HTTPRoute"}
            body["metadata"] |= {"name": name, "namespace": namespace}
            options |= {"force": True, "content_type": APPLY_PATCH}
        else:
            options["content_type"] = MERGE_PATCH
        await self._write(
            f"write httproute {namespace}/{name}",
            self.paths.patch,
            HTTPROUTES,
            namespace,
            name,
            body,
            **options,
        )

    async def get_gateway(self, namespace: str, name: str) -> dict[str, Any]:
        return await self._get_custom(
            f"get gateway {namespace}/{name}", namespace, "gateways", name
        )

    async def get_gatewayclass(self, name: str) -> dict[str, Any]:
        return await self._get_custom(f"get gatewayclass {name}", None, "gatewayclasses", name)

    async def _get_custom(
        self, what: str, namespace: str | None, plural: str, name: str
    ) -> dict[str, Any]:
        resource = Resource(GATEWAY_GROUP, "v1", plural)
        return await self._read(what, self.paths.get, resource, namespace, name)

    async def _list(
        self, what: str, fn: Callable[..., Any], namespace: str, fields: Fields | None
    ) -> list[dict[str, Any]]:
        """A namespace's objects as dicts, read, parsed and (with ``fields``) slimmed in the
        worker thread: at 10,000 routes the full objects are ~150 MB of Python objects per
        cycle, and they would wait for the busy event loop to be slimmed there."""

        def call() -> list[dict[str, Any]]:
            return _items(fn(namespace), fields)

        return await self._call(what, call)

    async def list_budgets_page(
        self,
        namespace: str | None,
        label_selector: str,
        limit: int,
        continue_token: str | None = None,
        fields: Fields | None = None,
    ) -> tuple[list[dict[str, Any]], str | None, int | None]:
        """One page of the TimeoutBudgets the selector matches (``namespace`` None: the
        whole cluster): (items, the next page's token or None, the items left after this
        page when the API server says).

        The pages of one listing are a consistent snapshot; a token older than the API
        server keeps (about five minutes) is refused with 410."""
        where = f"in {namespace}" if namespace else "cluster-wide"
        kwargs: dict[str, Any] = {"label_selector": label_selector, "limit": limit}
        if continue_token:
            kwargs["_continue"] = continue_token

        def call() -> tuple[list[dict[str, Any]], str | None, int | None]:
            data = json.loads(self.paths.list(TIMEOUTBUDGETS, namespace, **kwargs).data)
            meta = data.get("metadata") or {}
            items: list[dict[str, Any]] = data.get("items") or []
            if fields is not None:
                items = [slim(item, fields) for item in items]
            left = meta.get("remainingItemCount")
            return items, meta.get("continue") or None, int(left) if left is not None else None

        return await self._call(f"list timeoutbudgets {where}", call)

    # -- writes -------------------------------------------------------------------------
    async def patch_deployment_metadata(
        self, namespace: str, name: str, annotations: dict[str, str | None]
    ) -> None:
        body = {"metadata": {"annotations": annotations}}
        await self._write(
            f"patch deployment {namespace}/{name}",
            self.paths.patch,
            DEPLOYMENTS,
            namespace,
            name,
            body,
            STRATEGIC_MERGE_PATCH,
        )

    async def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        await self._write(
            f"scale deployment {namespace}/{name}",
            self.paths.patch,
            DEPLOYMENTS,
            namespace,
            name,
            {"spec": {"replicas": replicas}},
            STRATEGIC_MERGE_PATCH,
            sub="scale",
        )

    async def patch_hpa(
        self,
        namespace: str,
        name: str,
        min_replicas: int,
        annotations: dict[str, str | None],
    ) -> None:
        body = {"metadata": {"annotations": annotations}, "spec": {"minReplicas": min_replicas}}
        await self._write(
            f"patch horizontalpodautoscaler {namespace}/{name}",
            self.paths.patch,
            HPAS,
            namespace,
            name,
            body,
            STRATEGIC_MERGE_PATCH,
        )

    async def json_patch_service(
        self, namespace: str, name: str, operations: list[dict[str, Any]]
    ) -> None:
        # A JSON patch replaces the selector whole; a merge patch would keep stale keys.
        await self._write(
            f"patch service {namespace}/{name}",
            self.paths.patch,
            SERVICES,
            namespace,
            name,
            operations,
            JSON_PATCH,
        )

    async def ensure_configmap(self, namespace: str, name: str, labels: dict[str, str]) -> None:
        """Create the ConfigMap unless it exists (409 is success)."""
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "data": {"purpose": "hosts the timeout-budget-operator evaluation loop (kopf daemon)"},
        }
        try:
            await self._write(
                f"create configmap {namespace}/{name}",
                self.paths.create,
                CONFIGMAPS,
                namespace,
                body,
            )
        except Conflict:
            return

    # -- the leader Lease (several replicas) ------------------------------------------
    async def read_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Lease as a plain object, or None when it does not exist yet."""
        try:
            return await self._read(
                f"read lease {namespace}/{name}", self.paths.get, LEASES, namespace, name
            )
        except NotFound:
            return None

    async def create_lease(self, namespace: str, body: dict[str, Any]) -> None:
        """Create the Lease; ``Conflict`` when another replica created it first."""
        await self._write(
            f"create lease {namespace}/{body['metadata']['name']}",
            self.paths.create,
            LEASES,
            namespace,
            body,
        )

    async def replace_lease(self, namespace: str, body: dict[str, Any]) -> None:
        """Replace the Lease at ``metadata.resourceVersion``; ``Conflict`` when it moved."""
        name = body["metadata"]["name"]
        await self._write(
            f"replace lease {namespace}/{name}",
            self.paths.replace,
            LEASES,
            namespace,
            name,
            body,
        )

    async def list_leases(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        """The Leases carrying these labels (the shards' and members'), as plain objects."""

        def call() -> list[dict[str, Any]]:
            out = self.paths.list(LEASES, namespace, label_selector=label_selector)
            items: list[dict[str, Any]] = json.loads(out.data)["items"]
            return items

        return await self._call(f"list leases in {namespace}", call)

    async def delete_lease(self, namespace: str, name: str) -> None:
        """Delete the Lease (a member gone for long); gone already is fine."""
        try:
            await self._write(
                f"delete lease {namespace}/{name}",
                self.paths.delete,
                LEASES,
                namespace,
                name,
            )
        except NotFound:
            return

    async def create_event(self, namespace: str, body: dict[str, Any]) -> None:
        await self._write(
            f"create event in {namespace}", self.paths.create, EVENTS, namespace, body
        )

    async def get_configmap(self, namespace: str, name: str) -> dict[str, Any]:
        return await self._read(
            f"get configmap {namespace}/{name}",
            self.paths.get,
            CONFIGMAPS,
            namespace,
            name,
        )

    async def get_ingress(self, namespace: str, name: str) -> dict[str, Any]:
        return await self._read(
            f"get ingress {namespace}/{name}",
            self.paths.get,
            INGRESSES,
            namespace,
            name,
        )

    async def _read(self, what: str, fn: Callable[..., Any], *args: Any) -> dict[str, Any]:
        """One object as a dict, read and parsed in the worker thread."""

        def call() -> dict[str, Any]:
            data: dict[str, Any] = json.loads(fn(*args).data)
            return data

        return await self._call(what, call)

    async def apply_ingress_annotations(
        self, namespace: str, name: str, annotations: dict[str, str], manager: str
    ) -> None:
        """Server-side apply of these annotations alone, as field manager ``manager``: it
        then owns exactly them (taking them over from another manager if need be)."""
        body = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        }
        await self._write(
            f"apply annotations to ingress {namespace}/{name}",
            self.paths.patch,
            INGRESSES,
            namespace,
            name,
            body,
            APPLY_PATCH,
            field_manager=manager,
            force=True,
        )

    async def patch_ingress_annotations(
        self, namespace: str, name: str, annotations: dict[str, str | None], manager: str
    ) -> None:
        """A merge patch of annotations (``None`` removes one)."""
        await self._write(
            f"patch ingress {namespace}/{name}",
            self.paths.patch,
            INGRESSES,
            namespace,
            name,
            {"metadata": {"annotations": annotations}},
            MERGE_PATCH,
            field_manager=manager,
        )

    async def patch_budget_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        await self._write(
            f"patch timeoutbudget {namespace}/{name} status",
            self.paths.patch,
            TIMEOUTBUDGETS,
            namespace,
            name,
            {"status": status},
            MERGE_PATCH,
            sub="status",
        )

    async def patch_budget(
        self, namespace: str, name: str, body: dict[str, Any] | list[dict[str, Any]]
    ) -> None:
        """A merge patch (a dict) or a JSON patch (a list of operations) of a TimeoutBudget."""
        await self._write(
            f"patch timeoutbudget {namespace}/{name}",
            self.paths.patch,
            TIMEOUTBUDGETS,
            namespace,
            name,
            body,
            JSON_PATCH if isinstance(body, list) else MERGE_PATCH,
        )


Fields = Mapping[str, tuple[str, ...]]
"""Per top-level section (``metadata``, ``spec``, ``status``), the fields to keep."""

GATEWAY_GROUP = "gateway.networking.k8s.io"
HTTPROUTES = Resource(GATEWAY_GROUP, "v1", "httproutes")
TIMEOUTBUDGETS = Resource(GROUP, VERSION, PLURAL)
HTTPROUTE_FIELDS: Fields = {
    "metadata": ("name", "namespace", "creationTimestamp", "annotations"),
    "spec": ("hostnames", "parentRefs", "rules"),
}


def _items(response: Any, fields: Fields | None = None) -> list[dict[str, Any]]:
    data = json.loads(response.data)
    items: list[dict[str, Any]] = data.get("items", [])
    return items if fields is None else [slim(item, fields) for item in items]


def slim(obj: Mapping[str, Any], fields: Fields) -> dict[str, Any]:
    """``obj`` with only the ``fields`` of its top-level sections."""
    out: dict[str, Any] = {}
    for section, names in fields.items():
        value = obj.get(section)
        if isinstance(value, Mapping):
            out[section] = {f: value[f] for f in names if f in value}
    return out
