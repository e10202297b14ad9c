"""The composition root: where the operator's parts are built and wired, once at startup.

``handlers.configure`` calls these with the settings read once (``settings``): kopf's own
settings, the engine with its latency source, Kubernetes client, Event sink, the watch-fed
copy of the origins' objects and the Cloudflare registry, and the leader Lease. Nothing
else in the package builds a client or reads the environment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from timeout_budget import label_sweep
from timeout_budget.clients.kube import GROUP, PLURAL, Kube, load_api_client
from timeout_budget.clients.watch_cache import WatchedLists
from timeout_budget.cycle.engine import Engine
from timeout_budget.cycle.ports import EdgeSync
from timeout_budget.edge.registry import ZoneRegistry
from timeout_budget.leader import LeaderLease, default_identity
from timeout_budget.model import ownership
from timeout_budget.model.lease import LeaseTiming
from timeout_budget.model.shards import ROUTE_SHARD_LABEL, route_shard_label, shard_of
from timeout_budget.observe import chain, cluster
from timeout_budget.observe.latency import LatencyObserver
from timeout_budget.observe.nginx_config import NginxConfigReader
from timeout_budget.report import endpoint, events, metrics
from timeout_budget.route_watch import KOPF_FINALIZER, RouteWatch
from timeout_budget.settings import OperatorSettings
from timeout_budget.shards import ShardLeases

LOOP_LABEL = "timeoutbudget.io/evaluation-loop"
KOPF_WORKERS = 100
"""kopf's per-object workers at once (``settings.queueing.worker_limit``)."""
IDENTITY = default_identity()
"""This process in the Leases it holds and in the requests it sends Cloudflare."""


def configure_kopf(settings: kopf.OperatorSettings, config: OperatorSettings) -> None:
    # Handler progress in annotations: the status schema is ours, kopf's would be pruned.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix="kopf.timeoutbudget.io"
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="kopf.timeoutbudget.io", key="last-handled-configuration"
    )
    settings.persistence.finalizer = KOPF_FINALIZER  # the shard holders remove it too
    settings.posting.level = logging.WARNING  # only our own Events, not kopf's chatter
    # At most this many objects handled at once: started on 10,000 existing routes, kopf
    # would otherwise handle (and patch) them all at once, timing out the API server and
    # holding gigabytes. A worker lingers ``idle_timeout`` after its last event. Safe only
    # without a kopf index: indexed objects wait for the whole index, and a limit then
    # deadlocks (tried).
    settings.queueing.worker_limit = KOPF_WORKERS
    settings.queueing.idle_timeout = 1.0
    settings.watching.server_timeout = 300
    # A dead active replica's claim expires after this; a standby then takes over.
    settings.peering.lifetime = config.peering_lifetime_seconds
    # Watch only the loop's own ConfigMap, filtered server-side, not every ConfigMap.
    settings.watching.field_selectors["configmaps"] = f"metadata.name={config.loop_configmap}"
    settings.watching.label_selectors["configmaps"] = f"{LOOP_LABEL}=true"
    if config.shards:
        # Sharded, kopf sees only the routes not labeled with one of the shards yet (none,
        # or one of another shard count): it adds its finalizer and the label. The holder
        # of a labeled route's shard does the rest (``shard_upkeep``), so no replica's kopf
        # holds or handles the whole fleet.
        settings.watching.label_selectors[GROUP, PLURAL] = unlabeled_selector(config.shards)


def unlabeled_selector(shards: int) -> str:
    """The routes whose shard label is missing or not one of ``0..shards-1`` (``notin``
    matches an object without the label too)."""
    return f"{ROUTE_SHARD_LABEL} notin ({','.join(str(i) for i in range(shards))})"


async def sweep_labels(settings: OperatorSettings, kube: Kube) -> None:
    """Sharded: file the routes not labeled yet under their shards before kopf starts
    watching them (``label_sweep``), saying what it did and what it left to kopf."""
    if not settings.shards or not settings.label_sweep_seconds:
        return
    scopes: list[str | None] = list(settings.served_namespaces) or [None]
    result = await label_sweep.sweep(
        kube,
        settings.shards,
        unlabeled_selector(settings.shards),
        scopes,
        seconds=settings.label_sweep_seconds,
    )
    if not result.listed and result.stopped is None:
        return
    logging.getLogger("timeout_budget.label_sweep").log(
        logging.WARNING if result.stopped or result.failures else logging.INFO,
        "label sweep done in %.0fs: %d routes labeled for %d shards, %d changed meanwhile, "
        "%d left to kopf%s%s",
        result.seconds,
        result.labeled,
        settings.shards,
        result.changed,
        result.left_to_kopf,
        f"; stopped early: {result.stopped}" if result.stopped else "",
        f"; first failures: {'; '.join(result.failures)}" if result.failures else "",
    )


def build_zones(settings: OperatorSettings) -> ZoneRegistry:
    """The Cloudflare side: every CloudflareZone's client and cache, one request budget."""
    return ZoneRegistry(
        base_url=settings.cloudflare_base_url,
        metrics=metrics.METRICS,
        request_budget_cap=settings.cloudflare_request_budget,
        analytics_budget=settings.cloudflare_analytics_budget,
        replica=IDENTITY,
    )


def build_engine(settings: OperatorSettings, edge: EdgeSync | None = None) -> Engine:
    endpoint.serve(settings.metrics)  # once per process, at startup: standbys are scraped too
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
            # The operator's own annotations, and what the chain reads of an Ingress.
            annotation_prefix=(f"{ownership.PREFIX}/", *chain.ANNOTATIONS_READ),
            # Sharded: only the held shards' namespaces, asked for by the loop.
            on_demand=bool(settings.shards),
        )
        origins.start()
    return Engine(
        kube=kube,
        latency=LatencyObserver(settings.prometheus),
        edge_latency=LatencyObserver(settings.prometheus) if edge is not None else None,
        fast_latency=LatencyObserver(settings.prometheus) if settings.fast_lane_seconds else None,
        post_event=events.EventPoster(kube),
        edge=edge,
        dry_run=settings.dry_run,
        reading_refresh_seconds=settings.reading_refresh_seconds,
        origins=origins,
        nginx=NginxConfigReader(kube, *settings.ingress_nginx_configmap)
        if settings.ingress_nginx_configmap
        else None,
    )


def build_routes(settings: OperatorSettings, wake: Callable[[], None]) -> RouteWatch:
    """The TimeoutBudgets the loop evaluates, watched on their own connections (one per
    open watch: a scope, or a shard in each scope). Unsharded they are watched from now
    on (standbys too); sharded, the loop follows the shards it holds."""
    scopes = max(1, len(settings.served_namespaces)) * max(1, settings.shards)
    routes = RouteWatch(
        load_api_client(connections=scopes + 1), settings.served_namespaces or None, wake
    )
    if not settings.shards:
        routes.start()
    return routes


def label_shard(
    settings: OperatorSettings, namespace: str, spec: Mapping[str, Any], labels: Mapping[str, str]
) -> dict[str, str]:
    """Sharded: the shard label a TimeoutBudget lacks (or carries wrong), to patch."""
    if not settings.shards:
        return {}
    want = route_shard_label(namespace, spec, settings.shards)
    return {} if labels.get(ROUTE_SHARD_LABEL) == want else {ROUTE_SHARD_LABEL: want}


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
        IDENTITY,
        LeaseTiming.for_duration(settings.leader_lease_seconds),
    )
    engine.may_act = lease.leading  # a cycle in flight stops acting when the lease is lost
    lease.start()
    return lease


def build_shards(settings: OperatorSettings, engine: Engine, zones: ZoneRegistry) -> ShardLeases:
    """The shard Leases (``TBO_SHARDS``): this replica evaluates the shards it holds and
    spends their share of the Cloudflare budgets."""
    shards = ShardLeases(
        engine.kube,
        settings.operator_namespace,
        settings.loop_configmap,
        IDENTITY,
        LeaseTiming.for_duration(settings.leader_lease_seconds),
        settings.shards,
    )
    engine.may_act = shards.may_act  # a pass in flight stops acting when a shard is lost
    shards.on_owned = lambda owned: zones.share_budgets(len(owned) / settings.shards)
    shards.start()
    return shards


QUIESCE_SECONDS = 10.0
"""At shutdown, how long the pass in flight may take to end before clients are closed."""


async def quiesce(memo: kopf.Memo) -> None:
    """Let the evaluation pass in flight end before anything it uses is closed or released."""
    engine = memo.get("engine")
    if isinstance(engine, Engine):
        await engine.quiesce(QUIESCE_SECONDS)


def hold_unless_owned(shards: ShardLeases | None, key: str) -> None:
    """Sharded, only the holder of the object's shard may run its deletion handler: the
    other replicas retry (kopf keeps its finalizer until the holder's handler succeeds)."""
    if shards is not None and not shards.owns_key(key):
        shard = shard_of(key, shards.count)
        raise kopf.TemporaryError(f"shard {shard} is not held by this replica", delay=5)


def hold_until_listed(shards: ShardLeases | None, routes: RouteWatch | None, key: str) -> None:
    """A zone's deletion asks which routes still use it: only once the routes of its shard
    (or, unsharded, all routes) are listed, or a route not listed yet would be missed."""
    if routes is None:
        return
    shard = None if shards is None else shard_of(key, shards.count)
    if shard not in routes.ready():
        where = "the routes" if shard is None else f"shard {shard}'s routes"
        raise kopf.TemporaryError(f"{where} are not listed yet", delay=2)


def owns(shards: ShardLeases | None, key: str) -> bool:
    """Whether this replica acts for the object of this shard key (always, unsharded)."""
    return shards is None or shards.owns_key(key)


async def ensure_loop_host(settings: OperatorSettings) -> None:
    """The ConfigMap whose kopf daemon runs the loop (see ``handlers.evaluation_loop``)."""
    kube = Kube(load_api_client())
    await kube.ensure_configmap(
        settings.operator_namespace, settings.loop_configmap, {LOOP_LABEL: "true"}
    )


def is_loop_host(name: str, namespace: str | None, settings: OperatorSettings) -> bool:
    return name == settings.loop_configmap and namespace == settings.operator_namespace
