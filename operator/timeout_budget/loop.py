"""The operator's single evaluation loop, and the finalizer's undo, behind the kopf handlers.

One loop per operator process evaluates every route each interval (default 15 s) from
the kopf index of TimeoutBudgets; a create or spec change wakes it early. A cycle that
fails as a whole (Prometheus and the API server both gone, say) is logged and retried
next interval: it never kills the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

import kopf

from timeout_budget import heap
from timeout_budget.actions import reroute
from timeout_budget.actions.edge import errors as edge_errors
from timeout_budget.actions.edge.registry import ZoneRegistry
from timeout_budget.clients.cloudflare_errors import CloudflareError
from timeout_budget.clients.kube import Kube, KubeError, NotFound, load_api_client
from timeout_budget.clients.watch_cache import WatchedLists
from timeout_budget.engine import EdgeSync, Engine, RouteSnapshot
from timeout_budget.leader import LeaderLease, default_identity
from timeout_budget.model import ownership
from timeout_budget.model.lease import LeaseTiming
from timeout_budget.model.spec import parse_timeout_budget, route_key
from timeout_budget.observe import cluster
from timeout_budget.observe.latency import LatencyObserver
from timeout_budget.report import events, metrics
from timeout_budget.settings import OperatorSettings

log = logging.getLogger("timeout_budget.loop")

__all__ = [
    "RouteSnapshot",
    "build_engine",
    "build_lease",
    "configure_kopf",
    "ensure_loop_host",
    "finalize",
    "is_loop_host",
    "run",
    "snapshot_entry",
]


LOOP_LABEL = "timeoutbudget.io/evaluation-loop"
MIN_PAUSE_SECONDS = 1.0
"""The least pause between two cycles, even when a cycle overran the interval."""


def configure_kopf(settings: kopf.OperatorSettings, config: OperatorSettings) -> None:
    # Handler progress in annotations: the status schema is ours, kopf's would be pruned.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix="kopf.timeoutbudget.io"
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="kopf.timeoutbudget.io", key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING  # only our own Events, not kopf's chatter
    settings.watching.server_timeout = 300
    # A dead active replica's claim expires after this; a standby then takes over.
    settings.peering.lifetime = config.peering_lifetime_seconds
    # Watch only the loop's own ConfigMap, filtered server-side, not every ConfigMap.
    settings.watching.field_selectors["configmaps"] = f"metadata.name={config.loop_configmap}"
    settings.watching.label_selectors["configmaps"] = f"{LOOP_LABEL}=true"


def snapshot_entry(body: kopf.Body) -> dict[tuple[str, str], RouteSnapshot]:
    meta = body.get("metadata", {})
    if meta.get("deletionTimestamp"):
        # Being deleted: the finalizer restores what the route changed; a cycle must not
        # re-apply it behind the finalizer's back.
        return {}
    snap = RouteSnapshot(
        namespace=str(meta.get("namespace")),
        name=str(meta.get("name")),
        uid=str(meta.get("uid", "")),
        generation=meta.get("generation"),
        spec=json.dumps(body.get("spec", {}), separators=(",", ":")),
        status=_plain(body.get("status", {})),
    )
    return {(snap.namespace, snap.name): snap}


INTERN_UP_TO = 64
"""Strings up to this length are shared between index entries (``sys.intern``)."""


def _plain(value: Any) -> Any:
    """A plain copy of a watched body's part for the index, its keys and short strings
    shared: every route's status repeats the same keys, condition types, reasons and (in
    one cycle) timestamps. At 10,000 routes that is ~43 MB less (4.4 instead of 8.7 kB a
    route, measured on a healthy route's spec and status). The spec is kept as compact
    JSON text instead (read only when its generation changes)."""
    if isinstance(value, Mapping):
        return {sys.intern(str(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if type(value) is str and len(value) <= INTERN_UP_TO:
        return sys.intern(value)
    return value


def build_engine(settings: OperatorSettings, edge: EdgeSync | None = None) -> Engine:
    metrics.serve()  # once per process, at startup: standby replicas are scraped too
    kube = Kube(load_api_client())
    origins = None
    if settings.origin_reads == "watch":
        # Started now, so the first cycle finds the copies listed (standbys keep theirs
        # current too: a replica that takes over acts on current objects at once).
        # Their own connections: each open watch holds one for minutes, and the cycle's
        # status writes should not wait for (or crowd out) them.
        watches = 3 * max(1, len(settings.served_namespaces))
        origins = WatchedLists(
            load_api_client(connections=watches + 1),
            cluster.FIELDS,
            settings.served_namespaces or None,
            annotation_prefix=f"{ownership.PREFIX}/",
        )
        origins.start()
    return Engine(
        kube=kube,
        latency=LatencyObserver(settings.prometheus),
        post_event=events.EventPoster(kube),
        edge=edge,
        dry_run=settings.dry_run,
        origins=origins,
    )


def stop_engine(engine: Engine) -> None:
    """Stop what ``build_engine`` started that outlives a cycle (the origin watches)."""
    if isinstance(engine.origins, WatchedLists):
        engine.origins.stop()


def build_lease(settings: OperatorSettings, engine: Engine) -> LeaderLease:
    """The leader Lease next to the loop's ConfigMap (same name), watched from startup."""
    lease = LeaderLease(
        engine.kube,
        settings.operator_namespace,
        settings.loop_configmap,
        default_identity(),
        LeaseTiming.for_duration(settings.leader_lease_seconds),
    )
    engine.may_act = lease.leading  # a cycle in flight stops acting when the lease is lost
    lease.start()
    return lease


async def ensure_loop_host(settings: OperatorSettings) -> None:
    """The ConfigMap whose kopf daemon runs the loop (see ``handlers.evaluation_loop``)."""
    kube = Kube(load_api_client())
    await kube.ensure_configmap(
        settings.operator_namespace, settings.loop_configmap, {LOOP_LABEL: "true"}
    )


def is_loop_host(name: str, namespace: str | None, settings: OperatorSettings) -> bool:
    return name == settings.loop_configmap and namespace == settings.operator_namespace


async def run(
    engine: Engine,
    index: kopf.Index[Any, Any],
    wake: asyncio.Event,
    stopped: kopf.DaemonStopped,
    interval: float,
    settle: float = 0.0,
    lease: LeaderLease | None = None,
) -> None:
    """Evaluate every route each ``interval`` until kopf stops the daemon.

    kopf stops daemons when this operator is paused by peering (another replica is
    active) and when it exits. With peering, the loop also needs the leader ``lease``
    before every cycle: peering alone can briefly resume a standby next to a live active
    replica, the Lease cannot (see ``model.lease``). A replica that just became active
    first waits ``settle`` seconds, so a peer starting at the same moment is usually
    paused by peering before either asks for the Lease.
    """
    if settle > 0:
        log.info("evaluation loop: settling %.0fs before the first cycle (peering)", settle)
        await stopped.wait(settle)
    if stopped:
        return
    log.info("evaluation loop active: every %.0fs", interval)
    try:
        if lease is not None:
            await lease.want()
        while not stopped:
            cycle_started = time.monotonic()
            if lease is None or lease.leading():
                await _cycle(engine, index)
            wake.clear()
            # Cycles start every ``interval`` (not ``interval`` after the previous one
            # ended), so a reading is acted on within one interval plus the observe time.
            pause = max(interval - (time.monotonic() - cycle_started), MIN_PAUSE_SECONDS)
            if lease is not None and not lease.leading():
                pause = min(pause, lease.timing.retry)  # start as soon as the Lease is ours
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=pause)
    finally:
        if lease is not None:
            await lease.release()
    log.info("evaluation loop stopped (paused by peering or shutting down)")
    engine.metrics.retain_routes(())  # the active replica reports the routes, not this one


async def _cycle(engine: Engine, index: kopf.Index[Any, Any]) -> None:
    snapshots = [snap for key in list(index) for snap in index.get(key, [])]
    try:
        report = await engine.evaluate(snapshots)
        heap.give_back()  # the cycle's answers are garbage now: hand their pages back
        if isinstance(engine.origins, WatchedLists):
            engine.metrics.origin_copies(engine.origins.health())
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


async def finalize(
    body: kopf.Body,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    zones: ZoneRegistry | None = None,
) -> None:
    """Restore what this route changed: Cache Rule, DNS proxied flag, Service selector,
    HPA minReplicas, annotations. What the operator never owned is left alone."""
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
    kube = Kube(load_api_client())
    try:
        if spec.reroute and spec.reroute.service_name:
            services = {s["metadata"]["name"]: s for s in await kube.list_services(namespace)}
            svc = services.get(spec.reroute.service_name)
            if svc is not None and await reroute.restore(kube, namespace, key, svc):
                logger.info("finalizer: restored Service %s selector", spec.reroute.service_name)
        await _restore_scaling(kube, namespace, key, spec.origin.deployment_name, logger)
    except NotFound:
        return
    except KubeError as exc:
        raise kopf.TemporaryError(f"finalizer could not restore: {exc}", delay=10) from exc


async def _restore_scaling(
    kube: Kube,
    namespace: str,
    key: str,
    deployment: str,
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> None:
    for hpa in await kube.list_hpas(namespace):
        ref = hpa.get("spec", {}).get("scaleTargetRef", {})
        notes = hpa.get("metadata", {}).get("annotations") or {}
        baseline = notes.get(ownership.BASELINE_MIN_REPLICAS)
        if ref.get("name") == deployment and baseline and notes.get(ownership.OWNER) == key:
            clear: dict[str, str | None] = {
                ownership.BASELINE_MIN_REPLICAS: None,
                ownership.OWNER: None,
            }
            await kube.patch_hpa(namespace, hpa["metadata"]["name"], int(baseline), clear)
            logger.info("finalizer: restored HPA minReplicas to %s", baseline)
    for dep in await kube.list_deployments(namespace):
        notes = dep.get("metadata", {}).get("annotations") or {}
        if dep["metadata"]["name"] == deployment and notes.get(ownership.OWNER) == key:
            # Replicas are left as they are (no sudden scale-down on delete); only our
            # bookkeeping goes.
            await kube.patch_deployment_metadata(
                namespace,
                deployment,
                {ownership.BASELINE_REPLICAS: None, ownership.OWNER: None},
            )
