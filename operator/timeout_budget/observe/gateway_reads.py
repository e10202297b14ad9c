"""Read the Gateway API objects the timeout chain needs, once per cycle.

Only for namespaces with routes that declare ``spec.chain``: their HTTPRoutes, then each
Gateway those name (possibly in another namespace), then each GatewayClass those use. A
cluster without the Gateway API CRDs answers 404 to the list: no HTTPRoute serves any
route there, which is not a problem. Any other failure makes the Gateway hop of that
namespace's routes unknown, with the reason; the rest of the cycle goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, Protocol

from timeout_budget.clients.kube import KubeError, NotFound
from timeout_budget.observe.gateway import NOT_INSTALLED, GatewayApi, parent_gateways

log = logging.getLogger(__name__)


class GatewayReads(Protocol):
    async def list_httproutes(self, namespace: str) -> list[dict[str, Any]]: ...

    async def get_gateway(self, namespace: str, name: str) -> dict[str, Any]: ...

    async def get_gatewayclass(self, name: str) -> dict[str, Any]: ...


async def read(kube: GatewayReads, namespaces: Iterable[str]) -> dict[str, GatewayApi]:
    """Per namespace: its HTTPRoutes with the Gateways and GatewayClasses they use."""
    wanted = sorted(set(namespaces))
    if not wanted:
        return {}
    listed = await asyncio.gather(*(_httproutes(kube, ns) for ns in wanted))
    routes = dict(zip(wanted, listed, strict=True))
    pairs = sorted(
        {
            pair
            for found in routes.values()
            if isinstance(found, list)
            for r in found
            for pair in parent_gateways(r)
        }
    )
    gateways = dict(
        zip(pairs, await asyncio.gather(*(_gateway(kube, *p) for p in pairs)), strict=True)
    )
    class_names = sorted(
        {str(g.get("spec", {}).get("gatewayClassName", "")) for g in gateways.values() if g}
    )
    classes = dict(
        zip(class_names, await asyncio.gather(*(_class(kube, c) for c in class_names)), strict=True)
    )
    out: dict[str, GatewayApi] = {}
    for ns, found in routes.items():
        if found is None:
            out[ns] = NOT_INSTALLED
        elif isinstance(found, str):
            out[ns] = GatewayApi(problem=found)
        else:
            out[ns] = GatewayApi(tuple(found), gateways, classes)
    return out


async def _httproutes(kube: GatewayReads, ns: str) -> list[dict[str, Any]] | str | None:
    try:
        return await kube.list_httproutes(ns)
    except NotFound:
        return None  # the Gateway API CRDs are not installed
    except KubeError as exc:
        log.warning("namespace %s: HTTPRoutes not read: %s", ns, exc)
        return f"not read: {exc}"


async def _gateway(kube: GatewayReads, ns: str, name: str) -> dict[str, Any] | None:
    try:
        return await kube.get_gateway(ns, name)
    except KubeError as exc:
        log.info("Gateway %s/%s not read: %s", ns, name, exc)
        return None


async def _class(kube: GatewayReads, name: str) -> dict[str, Any] | None:
    try:
        return await kube.get_gatewayclass(name)
    except KubeError as exc:
        log.info("GatewayClass %s not read: %s", name, exc)
        return None
