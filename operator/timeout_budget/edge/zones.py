"""The book of CloudflareZones the operator knows: state, clients, locks and budgets.

One entry per CloudflareZone, at most one per Cloudflare zone id (two objects writing one
ruleset would undo each other), one ``asyncio.Lock`` per zone id (Cloudflare warns
against concurrent updates of a ruleset), and the request budgets: one per zone
(``spec.apiRequestBudget``) under one for the whole operator, whatever tokens it holds,
since Cloudflare counts per user and a 429 blocks every token of that user.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

from timeout_budget.clients.cloudflare import DEFAULT_BASE_URL, CloudflareClient, RequestObserver
from timeout_budget.clients.cloudflare_values import ApiToken
from timeout_budget.clients.request_budget import RequestBudget
from timeout_budget.edge.routes import ZoneRef
from timeout_budget.edge.zone import Problem, ZoneState
from timeout_budget.model.spec import CloudflareZoneSpec
from timeout_budget.model.timestamps import Clock

RETRY_FAILED_READ_SECONDS = 60.0
"""A zone whose last read failed (not rate-limited) is read again this soon."""


class Zones:
    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        clock: Clock = time.time,
        timeout_seconds: float = 20.0,
        observer: RequestObserver | None = None,
        request_budget_cap: int = 1200,
        analytics_budget: int = 150,
        replica: str | None = None,
    ) -> None:
        self.base_url = base_url
        self.replica = replica
        """Sent with every request (``clients.cloudflare.REPLICA_HEADER``)."""
        self.request_budget_cap = request_budget_cap
        """The operator-wide cap (``TBO_CLOUDFLARE_REQUEST_BUDGET``) over each zone's budget."""
        self._observer = observer
        self._clock = clock
        self._timeout = timeout_seconds
        self._zones: dict[ZoneRef, ZoneState] = {}
        self._owners: dict[str, ZoneRef] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.budget = RequestBudget(
            request_budget_cap, clock=clock, scope="for all of the operator's tokens"
        )
        """The operator-wide budget every zone's budget counts against too."""
        self.analytics_budget = RequestBudget(
            analytics_budget, clock=clock, scope="for GraphQL Analytics, all zones"
        )
        """GraphQL Analytics' budget for every zone (``TBO_CLOUDFLARE_ANALYTICS_BUDGET``)."""
        self._budgets: dict[ZoneRef, RequestBudget] = {}
        self.problems: dict[ZoneRef, Problem] = {}
        """Why a zone could not even be read (its Secret, a duplicate zone id)."""

    def get(self, ref: ZoneRef) -> ZoneState | None:
        return self._zones.get(ref)

    def __iter__(self) -> Iterator[ZoneState]:
        return iter(list(self._zones.values()))

    def __len__(self) -> int:
        return len(self._zones)

    def lock(self, zone_id: str) -> asyncio.Lock:
        return self._locks.setdefault(zone_id, asyncio.Lock())

    def claimed_by(self, ref: ZoneRef, zone_id: str) -> ZoneRef | None:
        """Another CloudflareZone already syncing ``zone_id``, if any."""
        owner = self._owners.get(zone_id)
        return owner if owner is not None and owner != ref and owner in self._zones else None

    def due(self, ref: ZoneRef, spec: CloudflareZoneSpec) -> bool:
        zone, now = self._zones.get(ref), self._clock()
        if zone is None or zone.spec != spec or ref in self.problems:
            return True
        if zone.auth_failed is not None:
            return True  # re-read the Secret: nothing is sent with the rejected token
        if zone.problem is not None and zone.problem.retry_at is not None:
            return now >= zone.problem.retry_at
        interval: float = spec.sync_interval_seconds
        if zone.problem is not None or zone.synced_at is None:
            interval = min(interval, RETRY_FAILED_READ_SECONDS)
        return zone.attempted_at is None or now - zone.attempted_at >= interval

    async def register(self, ref: ZoneRef, spec: CloudflareZoneSpec, token: ApiToken) -> ZoneState:
        """The zone's state with this spec and token: a new client when the token changed,
        a fresh cache when the zone id did."""
        zone = self._zones.get(ref)
        budget = self._budgets.get(ref)
        if budget is None:
            budget = RequestBudget(spec.api_request_budget, clock=self._clock, shared=self.budget)
            self._budgets[ref] = budget
        budget.limit = min(self.request_budget_cap, spec.api_request_budget)
        if zone is None or zone.spec.zone_id != spec.zone_id or zone.token != token:
            client = CloudflareClient(
                token,
                budget=budget,
                base_url=self.base_url,
                timeout_seconds=self._timeout,
                observer=self._observer,
                analytics_budget=self.analytics_budget,
                replica=self.replica,
            )
            if zone is not None:
                await zone.client.aclose()
                self._release(ref, zone.spec.zone_id)
            if zone is None or zone.spec.zone_id != spec.zone_id:
                zone = ZoneState(ref[0], ref[1], spec, token, client)
            else:
                zone.token, zone.client, zone.auth_failed, zone.problem = token, client, None, None
            self._zones[ref] = zone
        zone.spec = spec
        self._owners[spec.zone_id] = ref
        self.problems.pop(ref, None)
        return zone

    async def forget(self, ref: ZoneRef) -> None:
        self.problems.pop(ref, None)
        zone = self._zones.pop(ref, None)
        self._budgets.pop(ref, None)
        if zone is not None:
            self._release(ref, zone.spec.zone_id)
            await zone.client.aclose()

    async def aclose(self) -> None:
        for ref in list(self._zones):
            await self.forget(ref)

    def _release(self, ref: ZoneRef, zone_id: str) -> None:
        if self._owners.get(zone_id) == ref:
            del self._owners[zone_id]
