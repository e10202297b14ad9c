"""The cycle for every route at once: one batched read of the world, then each route's
steps (``cycle.route``), then the zone's batched Cloudflare write.

The cycle is the operator's heartbeat (default every 15 s). It sends the batched latency
queries for all routes and reads each namespace's objects once (from the watch-fed copy,
``clients.watch_cache``, or fresh lists) at the same time; as each batch of readings is
answered, that batch's routes go through their steps, the most urgent first, a few at a
time, while the other batches' queries still run. A failure in one route never stops the
others: it is reported in that route's status and as a Warning Event, and the next cycle
tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import pydantic

from timeout_budget import heap
from timeout_budget.clients.kube import Kube, KubeError
from timeout_budget.cycle import edge_check
from timeout_budget.cycle.act import Actor
from timeout_budget.cycle.ports import EdgeSync, EventSink, LatencySource, Readings
from timeout_budget.cycle.quiet import QuietRoutes
from timeout_budget.cycle.report import CycleReport, Reporter
from timeout_budget.cycle.route import Cycle, Decided, RouteSteps
from timeout_budget.cycle.snapshot import RouteSnapshot
from timeout_budget.decide import lanes
from timeout_budget.model.observation import LatencyObservation
from timeout_budget.model.spec import RouteKey, TimeoutBudgetSpec, parse_timeout_budget
from timeout_budget.model.timestamps import Clock
from timeout_budget.observe import cluster
from timeout_budget.observe.nginx_config import NginxConfigReader
from timeout_budget.report.metrics import METRICS, OperatorMetrics

log = logging.getLogger("timeout_budget.engine")

ROUTE_CONCURRENCY = 8
"""Routes evaluated at once: while one waits for the API server (an action, an Event, its
status patch), the others decide. One at a time, 1,000 status patches took 40-60 s on the
benchmark's sandbox (bench/README.md); eight in flight keep the API server busy without
flooding it."""

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Engine:
    kube: Kube
    latency: LatencySource
    post_event: EventSink
    edge: EdgeSync | None = None
    clock: Clock = time.time
    dry_run: bool = False
    """Operator-wide dry run (``TBO_DRY_RUN``): every route plans, nothing changes."""
    metrics: OperatorMetrics = METRICS
    reading_refresh_seconds: float = 60.0
    """A change of a route's reading alone is written to its status at most this often."""
    may_act: Callable[[], bool] = lambda: True
    """False when this replica lost the leader Lease mid-cycle: it then writes nothing more."""
    origins: cluster.NamespaceLists | None = None
    """Where each namespace's Deployments, HPAs and Services are read: the operator's
    watch-fed copy (``clients.watch_cache``); None lists them from ``kube`` each cycle."""
    nginx: NginxConfigReader | None = None
    """ingress-nginx's ConfigMap (``TBO_INGRESS_NGINX_CONFIGMAP``), for the timeout chain."""
    edge_latency: LatencySource | None = None
    """Where Prometheus is asked about the edge's windows (``cycle.edge_check``): its own
    source, so the cycle's query plan stays as it is."""
    fast_latency: LatencySource | None = None
    """The fast lane's source (``evaluate(..., lane=...)``): its own, so neither lane's
    query plan and bucket-coverage cache is rebuilt for the other's routes."""
    passes: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held by the loop during each pass, and by ``quiesce`` at shutdown."""
    closing: bool = False
    """Set at shutdown (``quiesce``): no pass starts any more."""
    near: set[RouteKey] = field(default_factory=set)
    """Routes whose last reading was at or over their recover line (``decide.lanes``): the
    fast lane's routes."""
    _parsed: dict[RouteKey, tuple[str, int, TimeoutBudgetSpec]] = field(default_factory=dict)
    quiet: QuietRoutes = field(default_factory=QuietRoutes)
    """The quiet routes' last evaluations, kept from cycle to cycle."""
    _told: dict[RouteKey, frozenset[str]] = field(default_factory=dict)
    """The refusals each route's Events last told about."""
    _refreshing: list[asyncio.Task[None]] = field(default_factory=list)
    """The bucket-coverage refreshes started after passes (each pass's, for the source it
    read), run between passes."""

    async def quiesce(self, timeout: float) -> None:
        """Shutdown: wait (at most ``timeout`` seconds) for the pass in flight to end, and
        start none after it, so clients are closed and Leases released only between
        passes."""
        try:
            await asyncio.wait_for(self.passes.acquire(), timeout)
        except TimeoutError:
            log.warning("shutting down with an evaluation pass still running")
            self.closing = True
            return
        self.closing = True
        self.passes.release()
        for task in self._refreshing:
            task.cancel()

    def steps(self) -> RouteSteps:
        """The five steps of a route, with this engine's parts."""
        reporter = Reporter(
            self.kube,
            self.post_event,
            self.metrics,
            self.edge,
            self._told,
            self.reading_refresh_seconds,
        )
        return RouteSteps(
            Actor(self.kube, self.edge, self.metrics), reporter, self.quiet, self.edge
        )

    async def evaluate(
        self, snapshots: Sequence[RouteSnapshot], lane: Collection[RouteKey] | None = None
    ) -> CycleReport:
        """One cycle over every route of ``snapshots``; with ``lane``, the fast lane's: only
        those routes are read (from ``fast_latency``) and go through their steps."""
        started = time.monotonic()
        if lane is None:
            await self._refreshed()
        cycle = Cycle(now=self.clock(), report=CycleReport(routes=0), steps=self.steps())
        valid = await self._parse(snapshots, cycle)
        self.quiet.retain(cycle.specs)
        latency = self.latency
        if lane is not None:
            wanted = set(lane)
            valid = [s for s in valid if s.key in wanted]
            cycle.specs = {s.key: cycle.specs[s.key] for s in valid}
            latency = self.fast_latency or self.latency
        cycle.report.routes = len(valid)
        if self.edge is not None and self.edge_latency is not None:
            # Before the routes are decided, so a route shows a new window of Cloudflare's
            # view with Prometheus' P95 over it in one write; a lane pass asks for its own
            # routes only (a window comes every few minutes, so seldom more than nothing).
            await edge_check.compare(self.edge, self.edge_latency, cycle.specs)
        readings: dict[RouteKey, LatencyObservation] = {}
        waiting = {s.key: s for s in valid}
        lists = asyncio.ensure_future(
            cluster.read_namespaces(
                self.kube if self.origins is None else self.origins,
                {s.namespace for s in valid},
                cycle.unread,
                self.kube,
                {s.namespace for s in valid if cycle.specs[s.key].chain is not None},
                self.nginx,
                {s.namespace for s in valid if _shifts(cycle.specs[s.key])},
            )
        )
        observe_started = time.monotonic()
        try:
            parts = latency.observe_parts(cycle.specs, None)
            async with contextlib.aclosing(parts):
                async for part in parts:
                    readings.update(part)
                    cycle.objects = await lists
                    ready = [
                        snap
                        for snap in (waiting.pop(key) for key in part if key in waiting)
                        if not self._still_quiet(snap, part, cycle)
                    ]
                    # The most urgent routes first: a route above its at-risk line is scaled
                    # within moments of the answer, not after the healthy routes were decided.
                    ready.sort(
                        key=lambda s: urgency(cycle.specs[s.key], part.get(s.key)), reverse=True
                    )
                    await bounded(
                        ready, lambda s: self._route(s, readings, cycle), ROUTE_CONCURRENCY
                    )
            if lane is None:  # the fast lane's few readings would skew the per-outcome gauges
                self.metrics.latency_read(
                    latency.answered_in or time.monotonic() - observe_started,
                    [readings.get(key) for key in cycle.specs],
                    latency.queries_sent,
                )
            cycle.objects = await lists
        finally:
            lists.cancel()
        # Routes no answer covered (a source that left some out) hold, saying why.
        await bounded(
            list(waiting.values()), lambda s: self._route(s, readings, cycle), ROUTE_CONCURRENCY
        )
        edge_failures = await self.edge.flush() if self.edge is not None else {}
        await bounded(
            cycle.deferred,
            lambda d: self._report(d, edge_failures.get(d.outcome.snap.key), cycle),
            ROUTE_CONCURRENCY,
        )
        cycle.report.duration_seconds = time.monotonic() - started
        self._remember_near(cycle.specs, readings, whole=lane is None)
        if not self.closing:
            # What came due beside the pass's answers is read after them, not with them.
            self._refreshing = [t for t in self._refreshing if not t.done()]
            self._refreshing.append(asyncio.ensure_future(self._refresh(latency)))
        if lane is None:
            self.metrics.cycle_done(cycle.report.duration_seconds, cycle.report.states)
        else:
            own = self.fast_latency is not None  # else its queries count with the cycles'
            self.metrics.fast_lane_done(
                cycle.report.duration_seconds,
                cycle.report.routes,
                latency.queries_sent if own else None,
            )
        return cycle.report

    @staticmethod
    async def _refresh(latency: LatencySource) -> None:
        try:
            if await latency.refresh_coverage():
                heap.give_back()  # its answers are garbage now, as a cycle's are (``loop``)
        except Exception:  # advisory: the last known bounds stay; retried when next due
            log.exception("bucket coverage refresh failed")

    async def _refreshed(self) -> None:
        """The refreshes started after earlier passes are over before a cycle's queries are
        sent (they are normally long done: they run in the pauses between passes)."""
        loop = asyncio.get_running_loop()
        pending = [t for t in self._refreshing if not t.done() and t.get_loop() is loop]
        self._refreshing = []
        if pending:
            await asyncio.wait(pending)

    def _remember_near(
        self,
        specs: Mapping[RouteKey, TimeoutBudgetSpec],
        readings: Mapping[RouteKey, LatencyObservation],
        whole: bool,
    ) -> None:
        """The routes read now that are near their line; a full cycle also drops routes
        that are gone."""
        if whole:
            self.near &= specs.keys()
        for key, spec in specs.items():
            if lanes.near_line(spec, readings.get(key)):
                self.near.add(key)
            else:
                self.near.discard(key)

    async def _parse(self, snapshots: Sequence[RouteSnapshot], cycle: Cycle) -> list[RouteSnapshot]:
        """Each route's spec, parsed once per generation; an invalid one is reported."""
        parsed: dict[RouteKey, tuple[str, int, TimeoutBudgetSpec]] = {}
        for snap in snapshots:
            known = self._parsed.get(snap.key)
            if known is not None and known[:2] == (snap.uid, snap.generation):
                cycle.specs[snap.key] = known[2]
                parsed[snap.key] = known
                continue
            try:
                spec = parse_timeout_budget(snap.spec_dict())
            except pydantic.ValidationError as exc:
                await cycle.steps.reporter.invalid(snap, exc, cycle.now, cycle.report)
                continue
            if self.dry_run:
                spec = spec.model_copy(update={"dry_run": True})
            cycle.specs[snap.key] = spec
            if snap.generation is not None:
                parsed[snap.key] = (snap.uid, snap.generation, spec)
        self._parsed = parsed
        return [s for s in snapshots if s.key in cycle.specs]

    def _still_quiet(self, snap: RouteSnapshot, part: Readings, cycle: Cycle) -> bool:
        spec = cycle.specs[snap.key]
        latency = part.get(snap.key)
        edge_synced = self.edge is not None and spec.edge is not None
        known = self.quiet.fast(snap, spec, latency, cycle.objects, cycle.now, edge_synced)
        if known is None:
            return False
        cycle.steps.reporter.unchanged(snap, known.state, latency, cycle.report)
        return True

    async def _route(
        self, snap: RouteSnapshot, readings: Mapping[RouteKey, LatencyObservation], cycle: Cycle
    ) -> None:
        if not self.may_act():
            return
        spec = cycle.specs[snap.key]
        try:
            decided = await cycle.steps.run(snap, spec, readings.get(snap.key), cycle)
        except KubeError as exc:
            log.warning("route %s: %s", snap.key, exc)
            return
        if decided is None:
            return
        if self.edge is not None and spec.edge is not None and self.edge.awaits_flush(snap.key):
            cycle.deferred.append(decided)  # reported with the outcome of the zone's one write
        else:
            await self._report(decided, None, cycle)

    async def _report(self, decided: Decided, edge_failure: str | None, cycle: Cycle) -> None:
        if not self.may_act():
            return
        try:
            await cycle.steps.report(decided, edge_failure, cycle)
        except KubeError as exc:
            log.warning("route %s: status not reported: %s", decided.outcome.snap.key, exc)


async def bounded(items: Sequence[T], work: Callable[[T], Awaitable[R]], limit: int) -> list[R]:
    """``work`` on every item, at most ``limit`` at a time, results in order. Every item is
    worked on even if one fails; the first failure is then raised."""
    results: list[R | None] = [None] * len(items)
    queue = iter(enumerate(items))

    async def worker() -> None:
        for index, item in queue:
            results[index] = await work(item)

    done = await asyncio.gather(
        *(worker() for _ in range(min(limit, len(items)))), return_exceptions=True
    )
    for outcome in done:
        if isinstance(outcome, BaseException):
            raise outcome
    return results  # type: ignore[return-value]  # every slot was filled


def urgency(spec: TimeoutBudgetSpec, latency: LatencyObservation | None) -> float:
    """P95 over the declared budget (the zone's default when none is declared): the
    order in which a cycle decides and acts. Routes without a reading come last."""
    if latency is None or latency.seconds is None or not latency.has_value:
        return -1.0
    return latency.seconds / spec.budget_seconds(None)


def _shifts(spec: TimeoutBudgetSpec) -> bool:
    """Whether the route's reroute is a weighted one (its HTTPRoute is read each cycle)."""
    return spec.reroute is not None and spec.reroute.http_route is not None
