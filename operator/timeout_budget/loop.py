"""The operator's single evaluation loop, behind the kopf daemon ``handlers.evaluation_loop``.

One loop per operator process evaluates every route each interval (default 15 s) from
the watched copy of the TimeoutBudgets (``route_watch``); a create or spec change wakes it
early. A cycle that
fails as a whole (Prometheus and the API server both gone, say) is logged and retried
next interval: it never kills the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection
from typing import Protocol

import kopf

from timeout_budget import heap
from timeout_budget.clients.watch_cache import WatchedLists
from timeout_budget.cycle.engine import Engine
from timeout_budget.cycle.snapshot import RouteSnapshot
from timeout_budget.leader import LeaderLease
from timeout_budget.shards import ShardLeases

log = logging.getLogger("timeout_budget.loop")

MIN_PAUSE_SECONDS = 1.0
"""The least pause between two cycles, even when a cycle overran the interval."""
NOT_LISTED_PAUSE_SECONDS = 0.5
"""The pause while the routes (or a newly held shard's) are not listed yet."""


class Routes(Protocol):
    """The TimeoutBudgets as last seen (``route_watch.RouteWatch``), by shard (None:
    unsharded)."""

    def follow(self, shards: Collection[int | None]) -> None: ...
    def ready(self) -> frozenset[int | None]: ...
    def snapshots(self, shards: Collection[int | None] | None = None) -> list[RouteSnapshot]: ...


async def run(
    engine: Engine,
    routes: Routes,
    wake: asyncio.Event,
    stopped: kopf.DaemonStopped,
    interval: float,
    settle: float = 0.0,
    lease: LeaderLease | None = None,
    fast_interval: float = 0.0,
    shards: ShardLeases | None = None,
) -> None:
    """Evaluate every route each ``interval`` until kopf stops the daemon; in between,
    every ``fast_interval`` seconds (0: never), the routes near their line (the fast lane,
    ``decide.lanes``). Both run here, one after the other, never at once: a route is
    never decided by two passes at the same time.

    kopf stops daemons when this operator is paused by peering (another replica is
    active) and when it exits. With peering, the loop also needs the leader ``lease``
    before every cycle: peering alone can briefly resume a standby next to a live active
    replica, the Lease cannot (see ``model.lease``). A replica that just became active
    first waits ``settle`` seconds, so a peer starting at the same moment is usually
    paused by peering before either asks for the Lease.

    Sharded (``shards``), every replica runs the loop, and each pass covers only the
    routes of the shards this replica holds at its start (``timeout_budget.shards``) and
    whose routes are listed (``routes.follow`` watches exactly the held shards); a replica
    holding none waits. Shards the plan moved away are handed over between passes.
    Unsharded, the first cycle waits for the routes' first list.
    """
    if settle > 0:
        log.info("evaluation loop: settling %.0fs before the first cycle (peering)", settle)
        await stopped.wait(settle)
    if stopped:
        return
    if fast_interval > 0:
        log.info(
            "evaluation loop active: every %.0fs; routes near their line every %.0fs",
            interval,
            fast_interval,
        )
    else:
        log.info("evaluation loop active: every %.0fs", interval)
    next_full = time.monotonic()
    try:
        if lease is not None:
            await lease.want()
        while not stopped:
            started = time.monotonic()
            full = started >= next_full or wake.is_set()
            listed = True
            async with engine.passes:
                if engine.closing:
                    break
                if full:
                    wake.clear()  # a change seen from here on wakes the next cycle
                if shards is not None:
                    owned = await shards.begin_pass()
                    await asyncio.to_thread(routes.follow, owned)
                    ready = frozenset(s for s in owned if s in routes.ready())
                    listed = ready == owned
                    shards.acting = ready
                    pick = _picker(routes, shards, ready)
                    if full and ready:
                        await _cycle(engine, pick)
                    elif engine.near and ready:
                        await _fast_lane(engine, pick)
                elif None not in routes.ready():
                    listed = False
                elif lease is None or lease.leading():
                    if full:
                        await _cycle(engine, _all(routes))
                    elif engine.near:
                        await _fast_lane(engine, _all(routes))
            if full and listed:
                # Cycles start every ``interval`` (not ``interval`` after the previous one
                # ended), so a reading is acted on within one interval plus the observe time.
                next_full = started + interval
            now = time.monotonic()
            pause = next_full - now
            if fast_interval > 0 and engine.near:
                pause = min(pause, started + fast_interval - now)
            pause = max(pause, MIN_PAUSE_SECONDS)
            if lease is not None and not lease.leading():
                pause = min(pause, lease.timing.retry)  # start as soon as the Lease is ours
            if shards is not None and not shards.owned():
                pause = min(pause, shards.timing.retry)  # start as soon as a shard is ours
            if not listed:
                pause = NOT_LISTED_PAUSE_SECONDS  # the first cycle waits for the list
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=pause)
    finally:
        if lease is not None:
            await lease.release()
    log.info("evaluation loop stopped (paused by peering or shutting down)")
    engine.metrics.retain_routes(())  # the active replica reports the routes, not this one


Pick = Callable[[], list[RouteSnapshot]]


def _all(routes: Routes) -> Pick:
    return lambda: routes.snapshots()


def _picker(routes: Routes, shards: ShardLeases, ready: frozenset[int]) -> Pick:
    """The routes of the ``ready`` shards; each checked against its spec's shard too (a
    route whose zone just changed may still carry its former shard's label)."""
    return lambda: shards.mine(routes.snapshots(ready), ready)


async def _fast_lane(engine: Engine, pick: Pick) -> None:
    try:
        report = await engine.evaluate(pick(), lane=frozenset(engine.near))
        log.info(
            "fast lane: %d routes, %d actions (%d failed) in %.3fs",
            report.routes,
            report.actions_applied,
            report.actions_failed,
            report.duration_seconds,
        )
    except Exception:  # like a cycle: never ends the loop
        log.exception("fast lane pass failed; the next cycle reads every route")
        engine.near.clear()


async def _cycle(engine: Engine, pick: Pick) -> None:
    snapshots = pick()
    if isinstance(engine.origins, WatchedLists):
        # The origins of these routes' namespaces only (sharded: the shards held now).
        engine.origins.serve({s.namespace for s in snapshots})
    try:
        report = await engine.evaluate(snapshots)
        heap.give_back()  # the cycle's answers are garbage now: hand their pages back
        if isinstance(engine.origins, WatchedLists):
            engine.metrics.origin_copies(engine.origins.health())
        # bench/probe.py reads this line's arguments: keep their order.
        log.info(
            "cycle: %d routes, %d actions, %d failed, %d status patches in %.3fs %s; %d unchanged"
            ", %d readings held",
            report.routes,
            report.actions_applied,
            report.actions_failed,
            report.status_patches,
            report.duration_seconds,
            report.states,
            report.unchanged,
            report.readings_held,
        )
    except Exception:  # one bad cycle must not end the loop
        log.exception("evaluation cycle failed; retrying next interval")
        engine.metrics.cycle_failed()
