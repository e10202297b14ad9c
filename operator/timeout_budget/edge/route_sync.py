"""The routes' side (``cycle.ports.EdgeSync``): each route's edge state from the zone's
cache, its changes queued and sent in the zone's one batched write per cycle, and its
Cloudflare changes undone when it is deleted.

The engine, every cycle, asks each route's edge state from the cache (``observe``,
``rerouted``, ``conditions``), queues changes (``apply``) and sends them at the end of the
cycle (``flush``): per zone one read of its Cache Rules, then one request per changed rule
(``cache_rules``), serialized with the zone handlers' reads by the zone's lock. Requests
of all tokens are counted by one shared ``RequestBudget``; a 429, a 5xx or a rejected
token make the zone hold back instead of retrying in a storm.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

from timeout_budget.clients.cloudflare_errors import CloudflareError
from timeout_budget.decide import rules
from timeout_budget.edge import (
    batch,
    changes,
    dns_switch,
    routes,
)
from timeout_budget.edge.errors import EdgeRefused, ZoneNotReady
from timeout_budget.edge.routes import EdgeRoute
from timeout_budget.edge.views import EdgeViews
from timeout_budget.edge.zone import ZoneState
from timeout_budget.model.actions import Action, RerouteTarget
from timeout_budget.model.conditions import ConditionInput
from timeout_budget.model.spec import RouteKey, TimeoutBudgetSpec
from timeout_budget.model.world import EdgeObservation

log = logging.getLogger("timeout_budget.edge")

FIRST_READ_GRACE_SECONDS = 120.0
"""How long a zone this process has not read yet may leave its routes' edge as their
status shows it (``RouteEdgeSync.unread``). A zone is read within the CloudflareZone
timer's 30 s of its shard being held; a read that fails says so in its condition at once."""


class RouteEdgeSync(EdgeViews):
    def observe(
        self, namespace: str, key: RouteKey, spec: TimeoutBudgetSpec
    ) -> EdgeObservation | None:
        route = self._remember(namespace, key, spec)
        zone = self._zones.get(route.zone) if route is not None else None
        if route is None or zone is None:
            return None
        return routes.observation(zone, route)

    def rerouted(
        self, namespace: str, key: RouteKey, spec: TimeoutBudgetSpec
    ) -> frozenset[RerouteTarget]:
        route = self._remember(namespace, key, spec)
        zone = self._zones.get(route.zone) if route is not None else None
        if route is None or zone is None:
            return frozenset()
        return routes.rerouted(zone, route)

    def conditions(
        self, namespace: str, key: RouteKey, spec: TimeoutBudgetSpec
    ) -> Sequence[ConditionInput]:
        route = self._remember(namespace, key, spec)
        if route is None:
            return ()  # the ladder's placeholder says why nothing is synced
        problem = self._zones.problems.get(route.zone)
        return (
            routes.condition(
                self._zones.get(route.zone),
                route,
                self._last_failures.get(key),
                problem.message if problem is not None else None,
            ),
            *self._edge_conditions(route.zone, key),
        )

    def unread(self, namespace: str, key: RouteKey, spec: TimeoutBudgetSpec) -> bool:
        """Whether this process has not read the route's zone (its settings, the records of
        its DNS-only hostname, its analytics) yet, with nothing known against it: right
        after a start or a shard's takeover, before the CloudflareZone handler's first
        read. The route's status then keeps the edge it shows
        (``decide.status.kept_edge``) instead of ``ZoneNotReady`` and back a moment later,
        and its edge changes wait; for at most ``FIRST_READ_GRACE_SECONDS`` per zone."""
        route = self._remember(namespace, key, spec)
        if route is None:
            return False
        zone = self._zones.get(route.zone)
        if self._zones.problems.get(route.zone) is not None or (
            zone is not None and zone.problem is not None
        ):
            return False  # the zone's condition says why
        analytics = self._analytics.get(route.zone)
        hostname = route.dns_only_hostname
        if (
            zone is not None
            and zone.timeout is not None
            and (hostname is None or hostname in zone.dns)
            and (not zone.spec.analytics.enabled or (analytics is not None and analytics.attempted))
        ):
            self._awaited.pop(route.zone, None)
            return False
        now = self._clock()
        return now - self._awaited.setdefault(route.zone, now) < FIRST_READ_GRACE_SECONDS

    async def apply(
        self, namespace: str, key: RouteKey, spec: TimeoutBudgetSpec, actions: Sequence[Action]
    ) -> None:
        """Queue the route's edge changes for this cycle's ``flush``, all or none; raise
        with the reason when they cannot be made at all."""
        if key in self._deleted:
            # A cycle that began before the route's deletion must not write back what the
            # finalizer just removed.
            raise EdgeRefused("the route is being deleted")
        try:
            route = self._remember(namespace, key, spec)
            if route is None:
                raise EdgeRefused("edge sync is off for this route (no edge.zoneRef or sync off)")
            problem = self._zones.problems.get(route.zone)
            now = self._clock()
            zone = changes.ready(self._zones.get(route.zone), route, problem, now)
            queued = [changes.change(zone, route, a, self._routes, now) for a in actions]
        except (EdgeRefused, ZoneNotReady) as exc:
            self._apply_failures[key] = str(exc)
            raise
        pending = self._batches.setdefault(route.zone, batch.Batch())
        for item in queued:
            if isinstance(item, changes.DnsChange):
                pending.dns[item.hostname] = (key, item.on)
            else:
                pending.rules[item.ref] = (key, item.rule)

    def awaits_flush(self, key: RouteKey) -> bool:
        """Whether this cycle's ``flush`` can change what the route reports: it queued
        changes, its changes failed before the flush, or it failed at the last flush (its
        condition then clears or stays). Any other route reports at once; a zone-wide
        problem a flush finds shows in its condition from the next cycle on."""
        if key in self._apply_failures or key in self._last_failures:
            return True
        return any(
            item[0] == key
            for pending in self._batches.values()
            for item in (*pending.rules.values(), *pending.dns.values())
        )

    async def flush(self) -> Mapping[RouteKey, str]:
        """Send every zone's queued changes (one Cache Rules read per zone, then one
        request per changed rule; zones in parallel); returns the failure reason per
        route."""
        queued, self._batches = self._batches, {}
        failures, self._apply_failures = dict(self._apply_failures), {}
        sends = []
        for ref, pending in queued.items():
            zone = self._zones.get(ref)
            if zone is None:
                gone = f"CloudflareZone {ref[0]}/{ref[1]} is gone"
                failures.update({key: gone for key, _ in pending.rules.values()})
                failures.update({key: gone for key, _ in pending.dns.values()})
            elif pending:
                sends.append(self._send(zone, pending))
        for outcome in await asyncio.gather(*sends):
            failures.update(outcome)
        await self._read_new_hostnames()
        self._last_failures = failures
        self._cycled = True
        return dict(failures)

    async def finalize_route(self, namespace: str, key: RouteKey, spec: TimeoutBudgetSpec) -> None:
        """The TimeoutBudget is being deleted: remove its Cache Rule and give back the DNS
        proxied flag it changed; nothing else. Raises ``ZoneNotReady`` (with the reason)
        when that cannot be done now: retry later."""
        self._deleted.add(key)
        for pending in self._batches.values():
            pending.drop(key)
        if spec.edge is None:
            self._forget_route(key)
            return
        ref = (namespace, spec.edge.zone_ref.name)
        zone = self._zones.get(ref)
        if zone is None or (zone.token_rejected() and zone.held_back(self._clock())):
            raise ZoneNotReady(
                f"CloudflareZone {ref[0]}/{ref[1]} is not synced: cannot remove the route's "
                "Cache Rule yet"
            )
        cleanup = batch.Batch(rules={rules.rule_ref(namespace, routes.name_of(key)): (key, None)})
        hostname = spec.reroute.dns_only_hostname if spec.reroute else None
        if hostname:
            cleanup.dns[hostname] = (key, False)
        failures = await self._send(zone, cleanup)
        if failures:
            raise ZoneNotReady(failures[key])
        self._forget_route(key)
        log.info("route %s: edge cleaned up in %s", key, zone.label)

    def revive(self, key: RouteKey) -> None:
        """A TimeoutBudget of this name was created (again): its edge may be synced."""
        self._deleted.discard(key)

    async def _send(self, zone: ZoneState, pending: batch.Batch) -> dict[RouteKey, str]:
        async with self._zones.lock(zone.spec.zone_id):
            failures = await batch.send(zone, pending, self._clock())
        for hostname, (key, _) in pending.dns.items():
            if key not in failures:  # the switch read the chain fresh: the cached one is stale
                zone.chains.pop(hostname, None)
        self._report(zone)
        return failures

    def _remember(self, namespace: str, key: RouteKey, spec: TimeoutBudgetSpec) -> EdgeRoute | None:
        zone = routes.zone_of(namespace, spec)
        if zone is None:
            self._forget_route(key)
            return None
        route = EdgeRoute(namespace, routes.name_of(key), key, zone, spec)
        self._keep_route(route)
        return route

    async def _read_new_hostnames(self) -> None:
        """Read the records of DNS-only hostnames no zone has cached yet, so ``rerouted``
        answers from the next cycle on (once per hostname)."""
        for zone in self._zones:
            missing = sorted(
                h for h in self._hostnames((zone.namespace, zone.name)) - zone.dns.keys()
            )
            if not missing or zone.held_back(self._clock()):
                continue
            async with self._zones.lock(zone.spec.zone_id):
                for hostname in missing:
                    try:
                        zone.dns[hostname] = await zone.client.list_dns_records(
                            zone.spec.zone_id, hostname
                        )
                        zone.chains[hostname] = await dns_switch.chain(
                            zone.client, zone.spec.zone_id, zone.dns[hostname]
                        )
                    except CloudflareError as exc:
                        log.info("%s: records of %s not read yet: %s", zone.label, hostname, exc)
                        break
