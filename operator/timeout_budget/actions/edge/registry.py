"""Every CloudflareZone the operator syncs, and the edge side of every route: ``EdgeSync``.

Two callers meet here. The CloudflareZone handlers bring each zone's spec and API token
(``reconcile_zone``: read Cloudflare, enforce the zone-wide timeout, build the status).
The engine, every cycle, asks each route's edge state from the cache (``observe``,
``rerouted``, ``conditions``), queues changes (``apply``) and sends them at the end of the
cycle (``flush``): per zone one read of its Cache Rules, then one request per changed rule
(``cache_rules``), serialized with the zone handlers' reads by the zone's lock. Requests
per token are counted by one shared ``RequestBudget``; a 429, a 5xx or a rejected token
make the zone hold back instead of retrying in a storm.

Tokens live only inside ``ApiToken`` and the SDK client; nothing here logs, reports or
raises one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from timeout_budget.actions.edge import (
    batch,
    changes,
    dns_switch,
    routes,
    zone_status,
    zone_sync,
)
from timeout_budget.actions.edge.errors import EdgeRefused, ZoneNotReady
from timeout_budget.actions.edge.routes import EdgeRoute, ZoneRef
from timeout_budget.actions.edge.zone import Problem, ZoneState
from timeout_budget.actions.edge.zones import Zones
from timeout_budget.clients.cloudflare import DEFAULT_BASE_URL, RequestObserver
from timeout_budget.clients.cloudflare_errors import CloudflareError
from timeout_budget.clients.cloudflare_values import ApiToken
from timeout_budget.decide import rules
from timeout_budget.decide.zone_raise import Need
from timeout_budget.model.actions import Action, RerouteTarget
from timeout_budget.model.conditions import ConditionInput
from timeout_budget.model.spec import CloudflareZoneSpec, RouteKey, TimeoutBudgetSpec
from timeout_budget.model.timestamps import Clock
from timeout_budget.model.world import EdgeObservation

log = logging.getLogger("timeout_budget.edge")


class EdgeMetrics(RequestObserver, Protocol):
    """What the registry reports (``report.metrics.OperatorMetrics`` is one)."""

    def cloudflare_budget(self, namespace: str, zone: str, remaining: int, limit: int) -> None: ...

    def cloudflare_zone_synced(self, namespace: str, zone: str, synced: bool) -> None: ...

    def forget_cloudflare_zone(self, namespace: str, zone: str) -> None: ...


class ZoneRegistry:
    """The operator's Cloudflare side; lives in kopf's ``memo.zones``."""

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        clock: Clock = time.time,
        request_timeout_seconds: float = 20.0,
        metrics: EdgeMetrics | None = None,
        request_budget_cap: int = 1200,
    ) -> None:
        self._clock = clock
        self._metrics = metrics
        self._zones = Zones(
            base_url=base_url,
            clock=clock,
            timeout_seconds=request_timeout_seconds,
            observer=metrics,
            request_budget_cap=request_budget_cap,
        )
        self._routes: dict[RouteKey, EdgeRoute] = {}
        self._batches: dict[ZoneRef, batch.Batch] = {}
        self._deleted: set[RouteKey] = set()
        """Routes whose finalizer ran: no edge change is queued for them any more."""
        self._apply_failures: dict[RouteKey, str] = {}
        self._last_failures: dict[RouteKey, str] = {}
        self._cycled = False
        """An engine cycle has flushed: ``_routes`` holds every route with edge sync."""

    def now(self) -> float:
        """The registry's clock (``model.timestamps.Clock``)."""
        return self._clock()

    @property
    def base_url(self) -> str:
        return self._zones.base_url

    def __repr__(self) -> str:
        return f"ZoneRegistry(base_url={self.base_url!r}, zones={len(self._zones)})"

    async def aclose(self) -> None:
        await self._zones.aclose()

    # -- CloudflareZone side -----------------------------------------------------------
    def due(self, namespace: str, name: str, spec: CloudflareZoneSpec) -> bool:
        """Whether the zone should be read now (periodic timer): never read, spec
        changed, ``syncIntervalSeconds`` passed, a failure's wait is over, or the zone's
        ``proxy_read_timeout`` should change for what its routes need now (a raise or
        its giving back, ``decide.zone_raise``)."""
        return self._zones.due((namespace, name), spec) or self._raise_due((namespace, name))

    def _raise_due(self, ref: ZoneRef) -> bool:
        zone = self._zones.get(ref)
        if zone is None or zone.enforce_note is not None or zone.held_back(self._clock()):
            return False  # a refused PATCH is tried again at the next periodic read
        found = zone_sync.planned(zone, self._need(zone))
        return found is not None and found.send is not None

    def _need(self, zone: ZoneState) -> Need | None:
        """What the zone's routes need of its timeout. Until the engine's first cycle has
        shown this process its routes (a restart: the zones are read first), a raise in
        force is taken as still needed: never given back on missing data."""
        if not self._cycled and zone.raised is not None:
            return Need(zone.raised.to_seconds, zone.raised_for)
        ref = (zone.namespace, zone.name)
        live = (r for r in self._routes.values() if r.zone == ref and r.key not in self._deleted)
        return routes.need(zone, live)

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
        self._report(zone)
        return zone_status.build(
            spec,
            zone,
            zone.client.budget,
            problem=zone.problem,
            now=now,
            previous=previous_status,
            generation=generation,
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
        )

    def routes_using(self, namespace: str, name: str) -> list[RouteKey]:
        return sorted(r.key for r in self._routes.values() if r.zone == (namespace, name))

    async def forget_zone(self, namespace: str, name: str) -> None:
        """The CloudflareZone is gone: drop its cache and client (nothing at Cloudflare)."""
        self._batches.pop((namespace, name), None)
        await self._zones.forget((namespace, name))
        if self._metrics is not None:
            self._metrics.forget_cloudflare_zone(namespace, name)

    # -- EdgeSync: the engine's side ---------------------------------------------------
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
        )

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

    # -- internals ---------------------------------------------------------------------
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

    async def _send(self, zone: ZoneState, pending: batch.Batch) -> dict[RouteKey, str]:
        async with self._zones.lock(zone.spec.zone_id):
            failures = await batch.send(zone, pending, self._clock())
        for hostname, (key, _) in pending.dns.items():
            if key not in failures:  # the switch read the chain fresh: the cached one is stale
                zone.chains.pop(hostname, None)
        self._report(zone)
        return failures

    def _report(self, zone: ZoneState) -> None:
        if self._metrics is None:
            return
        budget = zone.client.budget
        self._metrics.cloudflare_budget(zone.namespace, zone.name, budget.remaining(), budget.limit)
        synced = zone.problem is None and zone.synced_at is not None
        self._metrics.cloudflare_zone_synced(zone.namespace, zone.name, synced)

    def _remember(self, namespace: str, key: RouteKey, spec: TimeoutBudgetSpec) -> EdgeRoute | None:
        zone = routes.zone_of(namespace, spec)
        if zone is None:
            self._forget_route(key)
            return None
        route = EdgeRoute(namespace, routes.name_of(key), key, zone, spec)
        self._routes[key] = route
        return route

    def _forget_route(self, key: RouteKey) -> None:
        self._routes.pop(key, None)
        self._last_failures.pop(key, None)

    def _hostnames(self, ref: ZoneRef) -> set[str]:
        return {
            r.dns_only_hostname
            for r in self._routes.values()
            if r.zone == ref and r.dns_only_hostname
        }

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
