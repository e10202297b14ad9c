"""The TimeoutBudget finalizer: when a route is deleted, undo what it changed, nothing else.

First the edge (its Cache Rule, the DNS proxied flag it changed: ``EdgeSync``'s
``finalize_route``, with the zone's token), then every action kind's restore
(``actions.kinds``: the Service's own selector, the HPA's ``minReplicas``, the operator's
annotations). What the operator never owned is left alone. When something cannot be undone
now (Cloudflare or the API server unreachable), the deletion waits and kopf retries.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from timeout_budget.actions import kinds
from timeout_budget.actions.target import RestoreTarget
from timeout_budget.clients.cloudflare_errors import CloudflareError
from timeout_budget.clients.kube import Kube, KubeError, NotFound, load_api_client
from timeout_budget.edge import errors as edge_errors
from timeout_budget.edge.registry import ZoneRegistry
from timeout_budget.model.spec import parse_timeout_budget, route_key

Logger = logging.Logger | logging.LoggerAdapter[Any]


async def finalize(
    body: Mapping[str, Any], logger: Logger, zones: ZoneRegistry | None = None
) -> None:
    meta = body.get("metadata", {})
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    key = route_key(namespace, name)
    try:
        spec = parse_timeout_budget(dict(body.get("spec", {})))
    except ValueError:
        logger.info("finalizer: spec unreadable, nothing of ours to restore")
        return
    if zones is not None and spec.edge is not None and spec.edge.sync:
        try:
            await zones.finalize_route(namespace, key, spec)
        except (edge_errors.EdgeError, CloudflareError) as exc:
            # The route's Cloudflare changes must go before it does: retry, say why.
            raise kopf.TemporaryError(
                f"finalizer: Cloudflare cleanup pending: {exc}", delay=30
            ) from exc
    target = RestoreTarget(Kube(load_api_client()), namespace, key, spec)
    try:
        for done in await kinds.restore_all(target):
            logger.info("finalizer: %s", done)
    except NotFound:
        return
    except KubeError as exc:
        raise kopf.TemporaryError(f"finalizer could not restore: {exc}", delay=10) from exc
