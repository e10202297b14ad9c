"""kopf wiring only: every handler hands off to the engine or the actions in one line.

* A watch of its own keeps every TimeoutBudget as last seen (``route_watch``; sharded, only
  the held shards'), and wakes the loop when a route is created or its spec changed.
* One evaluation loop evaluates all routes each interval with one batched Prometheus
  query. It runs as a kopf daemon on one ConfigMap of the operator's own, so kopf peering
  stops it on a paused replica.
* Create/update/resume handlers only validate (and, sharded, label the route with its
  shard); the finalizer restores what the operator changed (Service selector, HPA
  minReplicas) and nothing else. Sharded, kopf sees only the routes not labeled yet: the
  holder of a labeled route's shard relabels, finalizes and deletes it
  (``shard_upkeep``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from timeout_budget import app, finalizer, loop, zone_handlers
from timeout_budget.model.shards import route_key_for_shard
from timeout_budget.model.spec import parse_timeout_budget, route_key
from timeout_budget.settings import OperatorSettings
from timeout_budget.shard_upkeep import ShardUpkeep

Logger = logging.Logger | logging.LoggerAdapter[Any]
GROUP, VERSION, PLURAL = "timeoutbudget.io", "v1alpha1", "timeoutbudgets"


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    if not isinstance(memo.get("settings"), OperatorSettings):  # run by ``kopf run``
        memo.settings = OperatorSettings.from_env()
    app.configure_kopf(settings, memo.settings)
    memo.wake = asyncio.Event()
    running = asyncio.get_running_loop()

    def wake() -> None:  # from a watch thread
        running.call_soon_threadsafe(memo.wake.set)

    memo.routes = app.build_routes(memo.settings, wake)
    memo.zones = app.build_zones(memo.settings)
    memo.engine = app.build_engine(memo.settings, edge=memo.zones)
    # Sharded: the routes not labeled yet are labeled now, before kopf watches them (on a
    # fleet's first sharded start, all of them; see timeout_budget.label_sweep).
    await app.sweep_labels(memo.settings, memo.engine.kube)
    memo.settle = 0.0 if settings.peering.standalone else memo.settings.peering_settle_seconds
    # Several replicas: only the leader Lease's holder evaluates (see timeout_budget.leader).
    memo.lease = (
        None if settings.peering.standalone else app.build_lease(memo.settings, memo.engine)
    )
    # Sharded: every replica evaluates the shards it holds (see timeout_budget.shards).
    memo.shards = (
        app.build_shards(memo.settings, memo.engine, memo.zones) if memo.settings.shards else None
    )
    # Sharded: the label, finalizer and deletion of the held shards' routes, which this
    # replica's kopf never sees (see timeout_budget.shard_upkeep).
    memo.upkeep = None
    if memo.shards is not None:
        memo.upkeep = ShardUpkeep(memo.engine.kube, memo.routes, memo.shards, memo.zones)
        memo.upkeep.start()
    await app.ensure_loop_host(memo.settings)


def _is_loop_host(name: str, namespace: str | None, memo: kopf.Memo, **_: Any) -> bool:
    return app.is_loop_host(name, namespace, memo.settings)


@kopf.daemon("v1", "configmaps", labels={app.LOOP_LABEL: "true"}, when=_is_loop_host)
async def evaluation_loop(stopped: kopf.DaemonStopped, memo: kopf.Memo, **kwargs: Any) -> None:
    interval = memo.settings.interval_seconds
    await loop.run(
        memo.engine,
        memo.routes,
        memo.wake,
        stopped,
        interval,
        memo.settle,
        memo.lease,
        fast_interval=memo.settings.fast_lane_seconds,
        shards=memo.shards,
    )


@kopf.on.cleanup()
async def release_lease(memo: kopf.Memo, **_: Any) -> None:
    await app.quiesce(memo)
    if memo.get("upkeep") is not None:
        await memo.upkeep.stop()
    if memo.get("lease") is not None:
        await memo.lease.stop()
    if memo.get("shards") is not None:
        await memo.shards.stop()
    if memo.get("engine") is not None:
        await asyncio.to_thread(app.stop_engine, memo.engine)
    if memo.get("routes") is not None:
        await asyncio.to_thread(memo.routes.stop)


@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
@kopf.on.resume(GROUP, VERSION, PLURAL)
async def validate(
    spec: kopf.Spec,
    labels: kopf.Labels,
    patch: kopf.Patch,
    memo: kopf.Memo,
    namespace: str | None,
    name: str | None,
    **_: Any,
) -> None:
    # Sharded: the route's shard label, which the replicas' watches select by.
    patch.metadata.labels.update(app.label_shard(memo.settings, str(namespace), spec, labels))
    try:
        parse_timeout_budget(dict(spec))
    except ValueError as exc:
        raise kopf.PermanentError(f"invalid spec: {exc}") from exc
    zone_handlers.registry_of(memo).revive(route_key(str(namespace), str(name)))


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def finalize(body: kopf.Body, logger: Logger, memo: kopf.Memo, **_: Any) -> None:
    meta = body.get("metadata", {})
    app.hold_unless_owned(
        memo.get("shards"), route_key_for_shard(str(meta.get("namespace")), body.get("spec", {}))
    )
    await finalizer.finalize(body, logger, zone_handlers.registry_of(memo))
