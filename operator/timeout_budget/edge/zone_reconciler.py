"""The CloudflareZone side: read each zone from Cloudflare, set its zone-wide timeout, build
its status.

The CloudflareZone handlers bring each zone's spec and API token (``reconcile_zone``: read
Cloudflare, enforce or raise the zone-wide timeout, build the status) on create, on spec
change and whenever the zone is ``due`` (its sync interval passed, a failure's wait is
over, or its routes' need of the zone-wide timeout changed). A zone's reads are serialized
with the routes' writes by the zone's lock.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from timeout_budget.clients.cloudflare_errors import CloudflareError
from timeout_budget.clients.cloudflare_values import ApiToken
from timeout_budget.edge import (
    zone_status,
    zone_sync,
)
from timeout_budget.edge.routes import ZoneRef
from timeout_budget.edge.views import EdgeViews
from timeout_budget.edge.zone import Problem, ZoneState
from timeout_budget.model.spec import CloudflareZoneSpec, RouteKey

log = logging.getLogger("timeout_budget.edge")


class ZoneReconciler(EdgeViews):
    def due(self, namespace: str, name: str, spec: CloudflareZoneSpec) -> bool:
        """Whether the zone should be read now (periodic timer): never read, spec
        changed, ``syncIntervalSeconds`` passed, a failure's wait is over, or the zone's
        ``proxy_read_timeout`` should change for what its routes need now (a raise or
        its giving back, ``decide.zone_raise``)."""
        ref = (namespace, name)
        return self._zones.due(ref, spec) or self._raise_due(ref) or self._analytics_due(ref)

    def _raise_due(self, ref: ZoneRef) -> bool:
        zone = self._zones.get(ref)
        if zone is None or zone.enforce_note is not None or zone.held_back(self._clock()):
            return False  # a refused PATCH is tried again at the next periodic read
        found = zone_sync.planned(zone, self._need(zone))
        return found is not None and found.send is not None

    async def reconcile_zone(
        self,
        namespace: str,
        name: str,
        spec: CloudflareZoneSpec,
        token: str,
        *,
        previous_status: Mapping[str, Any] | None = None,
        generation: int | None = None,
    ) -> dict[str, Any]:
        """Read the zone from Cloudflare (enforcing ``proxyReadTimeoutSeconds`` where the
        plan allows) and return its new ``status``. Never raises for Cloudflare's answers:
        they end up in the status."""
        ref, now = (namespace, name), self._clock()
        owner = self._zones.claimed_by(ref, spec.zone_id)
        if owner is not None:
            message = (
                f"zone {spec.zone_id} is already synced through CloudflareZone "
                f"{owner[0]}/{owner[1]}: one CloudflareZone per Cloudflare zone"
            )
            return self.problem_status(
                namespace,
                name,
                spec,
                "ZoneIdInUse",
                message,
                previous_status=previous_status,
                generation=generation,
            )
        async with self._zones.lock(spec.zone_id):
            zone = await self._zones.register(ref, spec, ApiToken(token))
            if zone.timeout is None and zone.raised is None:  # first read since start
                zone.raised, zone.raised_for = zone_status.raise_from(previous_status)
            if not (zone.token_rejected() and zone.held_back(now)):
                await self._refresh(zone, now)
        if not zone.token_rejected():
            await self._read_analytics(zone, now)
        self._report(zone)
        return zone_status.build(
            spec,
            zone,
            zone.client.budget,
            problem=zone.problem,
            now=now,
            previous=previous_status,
            generation=generation,
            edge_view=self._edge_view_status(zone),
        )

    def problem_status(
        self,
        namespace: str,
        name: str,
        spec: CloudflareZoneSpec,
        reason: str,
        message: str,
        *,
        previous_status: Mapping[str, Any] | None = None,
        generation: int | None = None,
    ) -> dict[str, Any]:
        """The status when the zone cannot even be read (Secret missing, ...): the last
        values known stay, the condition says what to fix. Routes keep using the token
        already known, if any."""
        ref = (namespace, name)
        problem = Problem(reason, message)
        self._zones.problems[ref] = problem
        zone = self._zones.get(ref)
        return zone_status.build(
            spec,
            zone,
            zone.client.budget if zone is not None else None,
            problem=problem,
            now=self._clock(),
            previous=previous_status,
            generation=generation,
            edge_view=self._edge_view_status(zone),
        )

    def routes_using(self, namespace: str, name: str) -> list[RouteKey]:
        return sorted(r.key for r in self._routes.values() if r.zone == (namespace, name))

    async def forget_zone(self, namespace: str, name: str) -> None:
        """The CloudflareZone is gone: drop its cache and client (nothing at Cloudflare)."""
        self._batches.pop((namespace, name), None)
        self._analytics.pop((namespace, name), None)
        self._awaited.pop((namespace, name), None)
        await self._zones.forget((namespace, name))
        if self._metrics is not None:
            self._metrics.forget_cloudflare_zone(namespace, name)

    async def _refresh(self, zone: ZoneState, now: float) -> None:
        """Re-read the zone; the caller holds its lock."""
        zone.attempted_at = now
        try:
            await zone_sync.refresh(
                zone, self._hostnames((zone.namespace, zone.name)), now, need=self._need
            )
        except CloudflareError as exc:
            zone.failed(exc, now)
            log.warning("%s: not synced: %s", zone.label, exc)
        else:
            zone.succeeded()
            zone.synced_at = now
