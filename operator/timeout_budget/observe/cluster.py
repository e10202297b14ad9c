"""Read each route's origin from the cluster: replicas, the HPA that owns them, reroutes.

For thousands of routes the reads are batched: the Deployments, HPAs and Services of each
namespace are read once per cycle, however many routes live there. In the operator they
come from watches (``clients.watch_cache``: listed once, then every change streamed, so
changes made by people or other controllers are seen within moments); ``Kube`` serves the
same reads as fresh lists, one per namespace and kind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from timeout_budget.clients.kube import Fields, KubeError
from timeout_budget.model import ownership
from timeout_budget.model.actions import RerouteTarget, RerouteVia
from timeout_budget.model.spec import RouteKey, TimeoutBudgetSpec
from timeout_budget.model.world import Hpa, ScaleObservation
from timeout_budget.observe import gateway_reads
from timeout_budget.observe.gateway import NOT_INSTALLED, GatewayApi
from timeout_budget.observe.nginx_config import DOCUMENTED, NginxConfigReader, NginxDefaults

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OriginState:
    """What the cluster says about one route's origin."""

    deployment_found: bool
    scale: ScaleObservation
    service_selector: dict[str, str] | None = None
    rerouted: frozenset[RerouteTarget] = frozenset()
    problems: tuple[str, ...] = ()
    """References that do not resolve (missing Deployment or Service), for status."""


@dataclass
class NamespaceObjects:
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    hpas: list[dict[str, Any]] = field(default_factory=list)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    ingresses: list[dict[str, Any]] = field(default_factory=list)
    """networking.k8s.io/v1 Ingresses: the hops in front of the routes (``observe.chain``)."""
    gateway_api: GatewayApi = NOT_INSTALLED
    nginx: NginxDefaults = DOCUMENTED
    """ingress-nginx's defaults (its controller's ConfigMap, read only for chain routes)."""
    """The HTTPRoutes, read only where a route declares ``spec.chain`` (``observe.gateway``)."""
    _hpa_targets: dict[str, dict[str, Any]] | None = field(default=None, repr=False, compare=False)
    _held: dict[str, list[dict[str, Any]]] | None = field(default=None, repr=False, compare=False)

    def ingresses_held_by(self, key: str) -> list[dict[str, Any]]:
        """The Ingresses whose read timeout the operator holds for route ``key``
        (``chain.sync``), indexed on first use."""
        if self._held is None:
            held: dict[str, list[dict[str, Any]]] = {}
            for item in self.ingresses:
                notes = item.get("metadata", {}).get("annotations") or {}
                if ownership.ORIGINAL_READ_TIMEOUT in notes:
                    held.setdefault(str(notes.get(ownership.OWNER)), []).append(item)
            self._held = held
        return self._held.get(key, [])

    def hpa_targeting(self, deployment: str) -> dict[str, Any] | None:
        """The first HPA whose ``scaleTargetRef`` is this Deployment (indexed on first use,
        so a namespace's routes find theirs without each scanning every HPA)."""
        if self._hpa_targets is None:
            targets: dict[str, dict[str, Any]] = {}
            for item in self.hpas:
                ref = item.get("spec", {}).get("scaleTargetRef", {})
                if ref.get("kind") == "Deployment" and ref.get("name"):
                    targets.setdefault(ref["name"], item)
            self._hpa_targets = targets
        return self._hpa_targets.get(deployment)


class NamespaceLists(Protocol):
    """Where a namespace's objects come from: ``Kube`` (lists) or ``WatchedLists``."""

    async def list_deployments(
        self, namespace: str, fields: Fields | None = None
    ) -> list[dict[str, Any]]: ...

    async def list_hpas(
        self, namespace: str, fields: Fields | None = None
    ) -> list[dict[str, Any]]: ...

    async def list_services(
        self, namespace: str, fields: Fields | None = None
    ) -> list[dict[str, Any]]: ...

    async def list_ingresses(
        self, namespace: str, fields: Fields | None = None
    ) -> list[dict[str, Any]]: ...


async def read_namespaces(
    kube: NamespaceLists,
    namespaces: Iterable[str],
    problems: dict[str, str] | None = None,
    gateway: gateway_reads.GatewayReads | None = None,
    chain_namespaces: Iterable[str] = (),
    nginx: NginxConfigReader | None = None,
    shift_namespaces: Iterable[str] = (),
) -> dict[str, NamespaceObjects]:
    """Deployments, HPAs, Services and Ingresses once per namespace, concurrently; with
    ``gateway``, the Gateway API objects of the ``chain_namespaces`` too, and with
    ``nginx``, ingress-nginx's ConfigMap when there are any; the ``shift_namespaces``
    (routes with a weighted reroute) have their HTTPRoutes read too.

    A namespace whose reads fail is absent from the result (and in ``problems``, why).
    """
    chained = set(chain_namespaces)
    apis = (
        asyncio.ensure_future(gateway_reads.read(gateway, chained | set(shift_namespaces)))
        if gateway is not None
        else None
    )
    defaults = asyncio.ensure_future(nginx.read()) if nginx is not None and chained else None

    async def one(ns: str) -> tuple[str, NamespaceObjects | None]:
        try:
            # Only what the loop reads (the client drops the rest as it parses).
            deps, hpas, svcs, ingresses = await asyncio.gather(
                kube.list_deployments(ns, fields=DEPLOYMENT_FIELDS),
                kube.list_hpas(ns, fields=HPA_FIELDS),
                kube.list_services(ns, fields=SERVICE_FIELDS),
                kube.list_ingresses(ns, fields=INGRESS_FIELDS),
            )
        except KubeError as exc:
            log.warning("namespace %s: origins not read, its routes hold: %s", ns, exc)
            if problems is not None:
                problems[ns] = str(exc)
            return ns, None
        return ns, NamespaceObjects(
            deployments={d["metadata"]["name"]: d for d in deps},
            hpas=hpas,
            services={s["metadata"]["name"]: s for s in svcs},
            ingresses=ingresses,
        )

    try:
        results = await asyncio.gather(*(one(ns) for ns in sorted(set(namespaces))))
        read = {ns: objs for ns, objs in results if objs is not None}
        for ns, api in (await apis if apis is not None else {}).items():
            if ns in read:
                read[ns].gateway_api = api
        if defaults is not None:
            found = await defaults
            for objs in read.values():
                objs.nginx = found
    finally:
        for pending in (apis, defaults):
            if pending is not None:
                pending.cancel()
    return read


_METADATA = ("name", "namespace", "annotations")
DEPLOYMENT_FIELDS: Fields = {
    "metadata": _METADATA,
    "spec": ("replicas",),
    "status": ("readyReplicas",),
}
HPA_FIELDS: Fields = {
    "metadata": _METADATA,
    "spec": ("scaleTargetRef", "minReplicas", "maxReplicas"),
}
SERVICE_FIELDS: Fields = {"metadata": _METADATA, "spec": ("selector",)}
INGRESS_FIELDS: Fields = {"metadata": _METADATA, "spec": ("ingressClassName", "rules")}
FIELDS: dict[str, Fields] = {
    "deployments": DEPLOYMENT_FIELDS,
    "horizontalpodautoscalers": HPA_FIELDS,
    "services": SERVICE_FIELDS,
    "ingresses": INGRESS_FIELDS,
}
"""What the loop reads of each kind, by plural (the rest is dropped as it is parsed)."""


def origin_sources(spec: TimeoutBudgetSpec, objects: NamespaceObjects) -> tuple[Any, ...]:
    """The objects this route's observation reads (its Deployment, the HPA targeting it, its
    reroute Service, ``None`` where absent; with ``spec.chain``, the Ingresses naming its
    host and the namespace's Gateway API objects, read afresh each cycle): while each is
    the very same object, the origin is unchanged (the copies replace
    an object on every change, never edit one)."""
    name = spec.origin.deployment_name
    reroute = spec.reroute
    service = reroute.service_name if reroute is not None else None
    host = spec.route.host
    in_front: tuple[Any, ...] = ()
    if spec.chain:
        in_front = (
            *(i for i in objects.ingresses if _names_host(i, host)),
            objects.gateway_api,
            objects.nginx,
        )
    return (
        objects.deployments.get(name),
        objects.hpa_targeting(name),
        objects.services.get(service) if service else None,
        *in_front,
    )


def _names_host(ingress: Mapping[str, Any], host: str) -> bool:
    rules = ingress.get("spec", {}).get("rules") or ()
    return any(isinstance(r, Mapping) and r.get("host") == host for r in rules)


def origin_state(key: RouteKey, spec: TimeoutBudgetSpec, objects: NamespaceObjects) -> OriginState:
    """Pure: this route's origin from its namespace's objects."""
    name = spec.origin.deployment_name
    deployment = objects.deployments.get(name)
    problems: list[str] = []
    if deployment is None:
        problems.append(f"Deployment {name} not found")
        scale = ScaleObservation(spec_replicas=0, ready_replicas=0)
        return OriginState(False, scale, problems=tuple(problems))
    hpa = _hpa(objects.hpa_targeting(name))
    dep_annotations = _annotations(deployment)
    if hpa is not None:
        baseline = _int(_annotations(hpa[1]).get(ownership.BASELINE_MIN_REPLICAS))
    else:
        baseline = _int(dep_annotations.get(ownership.BASELINE_REPLICAS))
    scale = ScaleObservation(
        spec_replicas=int(deployment.get("spec", {}).get("replicas", 1) or 0),
        ready_replicas=int(deployment.get("status", {}).get("readyReplicas", 0) or 0),
        hpa=hpa[0] if hpa else None,
        baseline_replicas=baseline,
    )
    rerouted: set[RerouteTarget] = set()
    selector = None
    reroute = spec.reroute
    if reroute is not None and reroute.service_name:
        service = objects.services.get(reroute.service_name)
        if service is None:
            problems.append(f"Service {reroute.service_name} not found")
        else:
            selector = dict(service.get("spec", {}).get("selector") or {})
            svc_ann = _annotations(service)
            if (
                svc_ann.get(ownership.ORIGINAL_SELECTOR) is not None
                and svc_ann.get(ownership.OWNER) == key
                and selector == dict(reroute.long_running_selector or {})
            ):
                rerouted.add(RerouteTarget(RerouteVia.SERVICE, reroute.service_name))
    return OriginState(True, scale, selector, frozenset(rerouted), tuple(problems))


def _hpa(item: dict[str, Any] | None) -> tuple[Hpa, dict[str, Any]] | None:
    if item is None:
        return None
    spec = item["spec"]
    hpa = Hpa(
        name=item["metadata"]["name"],
        min_replicas=int(spec.get("minReplicas", 1)),
        max_replicas=int(spec["maxReplicas"]),
    )
    return hpa, item


def _annotations(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict(obj.get("metadata", {}).get("annotations") or {})


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None
