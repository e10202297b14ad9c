"""The operator's single evaluation loop, behind the kopf daemon ``handlers.evaluation_loop``.

One loop per operator process evaluates every route each interval (default 15 s) from
the kopf index of TimeoutBudgets; a create or spec change wakes it early. A cycle that
fails as a whole (Prometheus and the API server both gone, say) is logged and retried
next interval: it never kills the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

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


async def run(
    engine: Engine,
    index: kopf.Index[Any, Any],
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
    routes of the shards this replica holds at its start (``timeout_budget.shards``); a
    replica holding none waits. Shards the plan moved away are handed over between passes.
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
            async with engine.passes:
                if engine.closing:
                    break
                if shards is not None:
                    owned = await shards.begin_pass()
                    pick = _picker(shards, owned)
                    if full and owned:
                        await _cycle(engine, index, pick)
                    elif engine.near and owned:
                        await _fast_lane(engine, index, pick)
                elif lease is None or lease.leading():
                    if full:
                        await _cycle(engine, index)
                    elif engine.near:
                        await _fast_lane(engine, index)
            if full:
                # Cycles start every ``interval`` (not ``interval`` after the previous one
                # ended), so a reading is acted on within one interval plus the observe time.
                next_full = started + interval
                wake.clear()
            now = time.monotonic()
            pause = next_full - now
            if fast_interval > 0 and engine.near:
                pause = min(pause, started + fast_interval - now)
            pause = max(pause, MIN_PAUSE_SECONDS)
            if lease is not None and not lease.leading():
                pause = min(pause, lease.timing.retry)  # start as soon as the Lease is ours
            if shards is not None and not shards.owned():
                pause = min(pause, shards.timing.retry)  # start as soon as a shard is ours
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=pause)
    finally:
        if lease is not None:
            await lease.release()
    log.info("evaluation loop stopped (paused by peering or shutting down)")
    engine.metrics.retain_routes(())  # the active replica reports the routes, not this one


Pick = Callable[[list[RouteSnapshot]], list[RouteSnapshot]]


def _all(snapshots: list[RouteSnapshot]) -> list[RouteSnapshot]:
    return snapshots


def _picker(shards: ShardLeases, owned: frozenset[int]) -> Pick:
    return lambda snapshots: shards.mine(snapshots, owned)


def _snapshots(index: kopf.Index[Any, Any], pick: Pick = _all) -> list[RouteSnapshot]:
    return pick([snap for key in list(index) for snap in index.get(key, [])])


async def _fast_lane(engine: Engine, index: kopf.Index[Any, Any], pick: Pick = _all) -> None:
    try:
        report = await engine.evaluate(_snapshots(index, pick), lane=frozenset(engine.near))
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


async def _cycle(engine: Engine, index: kopf.Index[Any, Any], pick: Pick = _all) -> None:
    snapshots = _snapshots(index, pick)
    try:
        report = await engine.evaluate(snapshots)
        heap.give_back()  # the cycle's answers are garbage now: hand their pages back
        if isinstance(engine.origins, WatchedLists):
            engine.metrics.origin_copies(engine.origins.health())
        # bench/probe.py reads this line's arguments: keep their order.
        log.info(
            "cycle: %d routes, %d actions, %d failed, %d status patches in %.3fs %s; %d unchanged",
            report.routes,
            report.actions_applied,
            report.actions_failed,
            report.status_patches,
            report.duration_seconds,
            report.states,
            report.unchanged,
        )
    except Exception:  # one bad cycle must not end the loop
        log.exception("evaluation cycle failed; retrying next interval")
        engine.metrics.cycle_failed()
