"""What the two sides of the operator's Cloudflare part share: the zones (their clients,
caches and request budget), the routes synced through them, and the changes queued for
the cycle's batched write. ``ZoneReconciler`` (the CloudflareZone side) and
``RouteEdgeSync`` (the routes' side) are built on it; ``ZoneRegistry`` is both.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Protocol

from timeout_budget.clients.cloudflare import DEFAULT_BASE_URL, RequestObserver
from timeout_budget.decide.edge_view import Cover
from timeout_budget.decide.zone_raise import Need
from timeout_budget.edge import (
    batch,
    routes,
)
from timeout_budget.edge.analytics import Analytics
from timeout_budget.edge.routes import EdgeRoute, ZoneRef
from timeout_budget.edge.zone import ZoneState
from timeout_budget.edge.zones import Zones
from timeout_budget.model.spec import RouteKey
from timeout_budget.model.timestamps import Clock

log = logging.getLogger("timeout_budget.edge")


class EdgeMetrics(RequestObserver, Protocol):
    """What the registry reports (``report.metrics.OperatorMetrics`` is one)."""

    def cloudflare_budget(self, namespace: str, zone: str, remaining: int, limit: int) -> None: ...

    def cloudflare_zone_synced(self, namespace: str, zone: str, synced: bool) -> None: ...

    def forget_cloudflare_zone(self, namespace: str, zone: str) -> None: ...


class EdgeState:
    """The state both sides share (see the module's docstring)."""

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        clock: Clock = time.time,
        request_timeout_seconds: float = 20.0,
        metrics: EdgeMetrics | None = None,
        request_budget_cap: int = 1200,
        analytics_budget: int = 150,
        replica: str | None = None,
    ) -> None:
        self._clock = clock
        self._metrics = metrics
        self._zones = Zones(
            base_url=base_url,
            clock=clock,
            timeout_seconds=request_timeout_seconds,
            observer=metrics,
            request_budget_cap=request_budget_cap,
            analytics_budget=analytics_budget,
            replica=replica,
        )
        self._caps = (request_budget_cap, analytics_budget)
        self._routes: dict[RouteKey, EdgeRoute] = {}
        self._batches: dict[ZoneRef, batch.Batch] = {}
        self._deleted: set[RouteKey] = set()
        """Routes whose finalizer ran: no edge change is queued for them any more."""
        self._apply_failures: dict[RouteKey, str] = {}
        self._last_failures: dict[RouteKey, str] = {}
        self._covers: dict[ZoneRef, dict[RouteKey, Cover]] = {}
        """By zone: each route's host and path prefix (``decide.edge_view.attribute``)."""
        self._covers_version: dict[ZoneRef, int] = {}
        self._analytics: dict[ZoneRef, Analytics] = {}
        """By zone: its GraphQL Analytics state (``edge.analytics``)."""
        self._awaited: dict[ZoneRef, float] = {}
        """By zone not read yet: when a route first asked for it (``RouteEdgeSync.unread``)."""
        self._cycled = False
        """An engine cycle has flushed: ``_routes`` holds every route with edge sync."""

    def share_budgets(self, fraction: float) -> None:
        """Spend only ``fraction`` of the operator-wide Cloudflare budgets (request and
        GraphQL): with sharding, the share of the shards this replica holds, so all
        replicas together stay within the caps without writing a shared counter."""
        requests, analytics = self._caps
        self._zones.budget.limit = max(1, math.floor(requests * fraction))
        self._zones.analytics_budget.limit = max(1, math.floor(analytics * fraction))

    def now(self) -> float:
        """The registry's clock (``model.timestamps.Clock``)."""
        return self._clock()

    @property
    def base_url(self) -> str:
        return self._zones.base_url

    async def aclose(self) -> None:
        await self._zones.aclose()

    def _need(self, zone: ZoneState) -> Need | None:
        """What the zone's routes need of its timeout. Until the engine's first cycle has
        shown this process its routes (a restart: the zones are read first), a raise in
        force is taken as still needed: never given back on missing data."""
        if not self._cycled and zone.raised is not None:
            return Need(zone.raised.to_seconds, zone.raised_for)
        ref = (zone.namespace, zone.name)
        live = (r for r in self._routes.values() if r.zone == ref and r.key not in self._deleted)
        return routes.need(zone, live)

    def _hostnames(self, ref: ZoneRef) -> set[str]:
        """The names whose records the zone reads: the DNS-only hostnames, and the hosts of
        routes that check their timeout chain (a CNAME to a Cloudflare Tunnel is a hop)."""
        mine = [r for r in self._routes.values() if r.zone == ref]
        dns_only = {r.dns_only_hostname for r in mine if r.dns_only_hostname}
        return dns_only | {r.spec.route.host for r in mine if r.spec.chain is not None}

    def _report(self, zone: ZoneState) -> None:
        if self._metrics is None:
            return
        budget = zone.client.budget
        self._metrics.cloudflare_budget(zone.namespace, zone.name, budget.remaining(), budget.limit)
        synced = zone.problem is None and zone.synced_at is not None
        self._metrics.cloudflare_zone_synced(zone.namespace, zone.name, synced)

    def _forget_route(self, key: RouteKey) -> None:
        route = self._routes.pop(key, None)
        self._last_failures.pop(key, None)
        if route is not None and self._covers.get(route.zone, {}).pop(key, None) is not None:
            self._covers_version[route.zone] = self._covers_version.get(route.zone, 0) + 1

    def _keep_route(self, route: EdgeRoute) -> None:
        before = self._routes.get(route.key)
        if before is not None and before.zone != route.zone:
            self._forget_route(route.key)
        self._routes[route.key] = route
        cover = Cover(route.key, route.spec.route.host, route.spec.route.path_prefix)
        covers = self._covers.setdefault(route.zone, {})
        if covers.get(route.key) != cover:
            covers[route.key] = cover
            self._covers_version[route.zone] = self._covers_version.get(route.zone, 0) + 1
