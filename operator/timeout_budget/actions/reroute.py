"""Rerouting a Service to the long-running pool, and putting it back exactly.

The Service's own selector is saved in an annotation on the Service before it is
switched, in the same JSON patch, so the undo (and the finalizer) restore precisely what
was there, whichever operator replica does it. A Service that carries another
TimeoutBudget's annotation is left alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from timeout_budget.actions import weights
from timeout_budget.actions.target import ClusterTarget, RestoreTarget
from timeout_budget.clients.kube import Kube
from timeout_budget.model import ownership
from timeout_budget.model.actions import Reroute, RerouteVia
from timeout_budget.model.spec import RouteKey


class RerouteRefused(RuntimeError):
    """The Service is not the operator's to change (another owner, no saved selector)."""


async def execute(target: ClusterTarget, action: Reroute) -> None:
    """The ``actions.kinds`` executor: switch the Service to the long-running pool, or put
    its own selector back; a weighted reroute's step on an HTTPRoute (``actions.weights``)."""
    if action.target.via is RerouteVia.HTTPROUTE:
        await weights.execute(target, action)
        return
    service = target.services.get(action.target.name)
    if service is None:
        raise RerouteRefused(f"Service {action.target.name} not found")
    if action.apply:
        reroute = target.spec.reroute
        selector = (reroute.long_running_selector if reroute else None) or {}
        await switch(target.kube, target.namespace, target.key, service, selector)
    else:
        await put_back(target.kube, target.namespace, target.key, service)


async def restore(target: RestoreTarget) -> list[str]:
    """The finalizer's undo: the Service's own selector back, if the route switched it, and
    every HTTPRoute rule it shifted."""
    return [*await _restore_service(target), *await weights.restore(target)]


async def _restore_service(target: RestoreTarget) -> list[str]:
    reroute = target.spec.reroute
    if reroute is None or not reroute.service_name:
        return []
    services = await target.kube.list_services(target.namespace)
    found = {s["metadata"]["name"]: s for s in services}.get(reroute.service_name)
    if found is None or not await put_back(target.kube, target.namespace, target.key, found):
        return []
    return [f"restored Service {reroute.service_name} selector"]


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _ann_path(key: str) -> str:
    return f"/metadata/annotations/{_escape(key)}"


async def switch(
    kube: Kube,
    namespace: str,
    owner: RouteKey,
    service: Mapping[str, Any],
    long_running: Mapping[str, str],
) -> None:
    name = service["metadata"]["name"]
    current = dict(service.get("spec", {}).get("selector") or {})
    notes = dict(service.get("metadata", {}).get("annotations") or {})
    other = notes.get(ownership.OWNER)
    if other is not None and other != owner:
        raise RerouteRefused(f"Service {name} is rerouted by TimeoutBudget {other}")
    ops: list[dict[str, Any]] = []
    if "annotations" not in service.get("metadata", {}) or notes is None:
        ops.append({"op": "add", "path": "/metadata/annotations", "value": {}})
    if ownership.ORIGINAL_SELECTOR not in notes:
        original = json.dumps(current, sort_keys=True)
        ops.append({"op": "add", "path": _ann_path(ownership.ORIGINAL_SELECTOR), "value": original})
        ops.append({"op": "add", "path": _ann_path(ownership.OWNER), "value": owner})
    ops.append({"op": "replace", "path": "/spec/selector", "value": dict(long_running)})
    await kube.json_patch_service(namespace, name, ops)


async def put_back(kube: Kube, namespace: str, owner: RouteKey, service: Mapping[str, Any]) -> bool:
    """Put the saved selector back; False when there was nothing of ours to restore."""
    name = service["metadata"]["name"]
    notes = dict(service.get("metadata", {}).get("annotations") or {})
    raw = notes.get(ownership.ORIGINAL_SELECTOR)
    if raw is None or notes.get(ownership.OWNER) not in (None, owner):
        return False
    original = json.loads(raw)
    ops: list[dict[str, Any]] = [
        {"op": "test", "path": _ann_path(ownership.ORIGINAL_SELECTOR), "value": raw},
        {"op": "replace", "path": "/spec/selector", "value": original},
        {"op": "remove", "path": _ann_path(ownership.ORIGINAL_SELECTOR)},
    ]
    if ownership.OWNER in notes:
        ops.append({"op": "remove", "path": _ann_path(ownership.OWNER)})
    await kube.json_patch_service(namespace, name, ops)
    return True
