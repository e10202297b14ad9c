"""The operator's own Prometheus metrics: what a platform engineer alerts and graphs on.

``kubectl get tb`` tells one person about one route; these tell a dashboard about all of
them, and about the operator itself: is every route inside its budget, what did the
operator do about the ones that were not (and what could it not do), does its loop keep
its pace, can it read Prometheus, and is Cloudflare answering or rate-limiting it.

Two habits keep the series honest and cheap:

* **No data is never 0.** A route without a latency reading has no ``p95`` and no
  ``ratio`` series at all (they are removed, like ``status.p95Seconds``), so a graph gaps
  instead of showing a fast route. Its state series says ``NoData``.
* **One series per route and fact.** The state is one series whose ``state`` label is the
  current state (the previous one is removed), not six 0/1 series per route; a route's
  series go when the route is deleted or the operator stops serving it. At 10,000
  routes that is about 60,000 series, kept as one small row per route and built only when
  scraped (``route_series``).

Everything is on ``prometheus_client``'s default registry (so the process and GC
collectors come along) and served by ``report.endpoint.serve`` on ``TBO_METRICS_ADDRESS``:
``TBO_METRICS_PORT`` (default ``0.0.0.0:9090``; port 0 turns the endpoint off).
Tests build an ``OperatorMetrics`` on their own ``CollectorRegistry``.

The Cloudflare side calls ``cloudflare_request``, ``cloudflare_not_sent``,
``cloudflare_budget``, ``cloudflare_zone_synced`` and ``forget_cloudflare_zone`` on the
instance it is given (``METRICS`` in the operator).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from timeout_budget import __version__
from timeout_budget.model.actions import Action, Refusal
from timeout_budget.model.conditions import ConditionInput, ConditionStatus, ConditionType
from timeout_budget.model.decision import Decision
from timeout_budget.model.edge_view import RouteEdge
from timeout_budget.model.observation import LatencyObservation, Outcome
from timeout_budget.model.state import State
from timeout_budget.report.route_series import PREFIX, RouteCollector, RouteRow

log = logging.getLogger("timeout_budget.metrics")


ACTION_OUTCOMES = ("applied", "failed", "planned", "refused")
CLOUDFLARE_OUTCOMES = ("ok", "rate_limited", "refused", "not_found", "auth_failed", "unavailable")
"""``ok`` or how a sent request failed (429, other 4xx, 404, 401/403, 5xx/timeout)."""
CLOUDFLARE_NOT_SENT = ("budget_spent", "rate_limit_wait")
"""Why a request was held back before sending: the operator's own budget, or a 429's wait."""
PROMETHEUS_ERRORS = (Outcome.UNAVAILABLE, Outcome.REJECTED)

CYCLE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0)
QUERY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
REQUEST_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0)


class OperatorMetrics:
    """Every metric of the operator, on one registry."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self.info = Gauge(
            f"{PREFIX}_operator_info",
            "The running operator's version (always 1).",
            ["version"],
            registry=registry,
        )
        self.info.labels(__version__).set(1)
        self.routes = Gauge(
            f"{PREFIX}_routes",
            "Routes by state at the end of the last evaluation cycle.",
            ["state"],
            registry=registry,
        )
        # -- actions ---------------------------------------------------------------------
        self.actions = Counter(
            f"{PREFIX}_actions",
            "Actions by type (scale, reroute, undo_reroute, edge_timeout) and outcome: "
            "applied, failed, planned (dry run) or refused (newly refused: the operator "
            "will not or cannot do it).",
            ["action", "outcome"],
            registry=registry,
        )
        # -- the loop --------------------------------------------------------------------
        self.cycle_duration = Histogram(
            f"{PREFIX}_evaluation_cycle_duration_seconds",
            "Duration of one evaluation cycle over every route.",
            buckets=CYCLE_BUCKETS,
            registry=registry,
        )
        self.fast_lane_duration = Histogram(
            f"{PREFIX}_fast_lane_duration_seconds",
            "Duration of one fast-lane pass over the routes near their line.",
            buckets=CYCLE_BUCKETS,
            registry=registry,
        )
        self.fast_lane_routes = Gauge(
            f"{PREFIX}_fast_lane_routes",
            "Routes in the fast lane's last pass (last reading at or over the recover line).",
            registry=registry,
        )
        self.cycles = Counter(
            f"{PREFIX}_evaluation_cycles",
            "Evaluation cycles by result (ok, failed: the whole cycle raised).",
            ["result"],
            registry=registry,
        )
        self.last_cycle = Gauge(
            f"{PREFIX}_evaluation_last_success_timestamp_seconds",
            "Unix time the last evaluation cycle completed.",
            registry=registry,
        )
        # -- Prometheus ------------------------------------------------------------------
        self.prometheus_duration = Histogram(
            f"{PREFIX}_prometheus_query_duration_seconds",
            "Time to read every route's latency from Prometheus in one cycle (all batched "
            "queries, run concurrently).",
            buckets=QUERY_BUCKETS,
            registry=registry,
        )
        self.prometheus_queries = Counter(
            f"{PREFIX}_prometheus_queries",
            "PromQL queries sent to Prometheus.",
            registry=registry,
        )
        self.prometheus_errors = Counter(
            f"{PREFIX}_prometheus_query_errors",
            "Evaluation cycles in which Prometheus could not answer for some routes, by "
            "outcome: MetricsUnavailable (unreachable, timeout, 5xx, 401/403) or "
            "QueryRejected (Prometheus refused the query).",
            ["outcome"],
            registry=registry,
        )
        self.latency_readings = Gauge(
            f"{PREFIX}_latency_readings",
            "Routes by the outcome of their latency reading in the last cycle (Value, "
            "NoData, MetricsUnavailable, QueryRejected, InvalidSelector).",
            ["outcome"],
            registry=registry,
        )
        # -- Cloudflare ------------------------------------------------------------------
        self.cf_requests = Counter(
            f"{PREFIX}_cloudflare_api_requests",
            "Requests sent to the Cloudflare API, by operation and outcome.",
            ["operation", "outcome"],
            registry=registry,
        )
        self.cf_errors = Counter(
            f"{PREFIX}_cloudflare_api_errors",
            "Cloudflare API requests that failed, by operation and kind (rate_limited, "
            "refused, not_found, auth_failed, unavailable).",
            ["operation", "kind"],
            registry=registry,
        )
        self.cf_rate_limited = Counter(
            f"{PREFIX}_cloudflare_api_rate_limited",
            "Cloudflare API answers 429 (rate limit), by operation.",
            ["operation"],
            registry=registry,
        )
        self.cf_duration = Histogram(
            f"{PREFIX}_cloudflare_api_request_duration_seconds",
            "Duration of Cloudflare API requests, by operation.",
            ["operation"],
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self.cf_not_sent = Counter(
            f"{PREFIX}_cloudflare_api_requests_not_sent",
            "Cloudflare API requests held back before sending, by reason: budget_spent "
            "(the operator's own request budget) or rate_limit_wait (a 429's Retry-After).",
            ["reason"],
            registry=registry,
        )
        self.cf_budget_remaining = Gauge(
            f"{PREFIX}_cloudflare_request_budget_remaining",
            "Cloudflare API requests the operator may still send in the current 5-minute "
            "window with the zone's token.",
            ["namespace", "zone"],
            registry=registry,
        )
        self.cf_budget_limit = Gauge(
            f"{PREFIX}_cloudflare_request_budget_limit",
            "The zone token's request budget per 5 minutes (spec.apiRequestBudget).",
            ["namespace", "zone"],
            registry=registry,
        )
        self.cf_zone_synced = Gauge(
            f"{PREFIX}_cloudflare_zone_synced",
            "1 when the CloudflareZone's last sync succeeded, 0 when it failed.",
            ["namespace", "zone"],
            registry=registry,
        )
        self.origin_objects = Gauge(
            f"{PREFIX}_origin_objects",
            "Objects in the operator's watch-fed copy of the origins, by kind.",
            ["kind"],
            registry=registry,
        )
        self.origin_copy_current = Gauge(
            f"{PREFIX}_origin_copy_current",
            "1 while the kind's watch-fed copy is current, 0 while it is being listed again "
            "(its routes hold).",
            ["kind"],
            registry=registry,
        )
        self._lock = threading.Lock()
        self._routes: dict[tuple[str, str], RouteRow] = {}
        registry.register(RouteCollector(self._routes, self._lock))
        self._seen: set[tuple[str, str]] = set()
        self._queries_seen: int | None = None
        self._fast_queries_seen = 0
        for state in State:
            self.routes.labels(state.value).set(0)
        for outcome in Outcome:
            self.latency_readings.labels(outcome.value).set(0)

    # -- routes --------------------------------------------------------------------------
    def route(
        self,
        namespace: str,
        name: str,
        decision: Decision,
        conditions: Sequence[ConditionInput] = (),
        reading: float | None = None,
        edge: RouteEdge | None = None,
    ) -> None:
        """One route's readings after its evaluation, and its newly refused actions.

        ``reading``: the P95 as Prometheus answered it; the decision's (and the status')
        P95 is steadied against noise (``decide.bands.steady``), the metric is not."""
        if decision.p95_seconds is None:
            reading = None
        elif reading is None:
            reading = decision.p95_seconds
        synced = [c for c in conditions if c.type == ConditionType.EDGE_SYNCED]
        with self._lock:
            self._seen.add((namespace, name))
            row = self._routes.get((namespace, name))
            if row is None:
                row = self._routes[(namespace, name)] = RouteRow()
            row.budget = decision.budget_seconds or None
            row.replicas = decision.desired_replicas
            row.p95 = reading
            row.state = decision.state.value
            row.edge_synced = (
                None if not synced else 1 if synced[-1].status == ConditionStatus.TRUE else 0
            )
            row.covered = tuple(
                (c.group, 1.0 if c.covered else 0.0) for c in decision.edge_coverage
            )
            row.edge = _edge_series(edge, conditions)
            refusals = row.refusals
            row.refusals = frozenset(r.describe() for r in decision.refusals)
        self._count_refusals(refusals, decision.refusals)

    def _count_refusals(self, before: frozenset[str], refusals: Sequence[Refusal]) -> None:
        """Count each refusal once while it lasts (not once per cycle)."""
        described = {r.describe(): r for r in refusals}
        for text in described.keys() - before:
            self.actions.labels(described[text].kind.value, "refused").inc()

    def forget_route(self, namespace: str, name: str) -> None:
        """Remove every series of one route (deleted, or no longer evaluated)."""
        with self._lock:
            self._routes.pop((namespace, name), None)

    def route_unchanged(self, namespace: str, name: str, reading: float | None = None) -> None:
        """A route evaluated without change: its series stay as they are, but for the
        reading (a quiet route's status shows a steadied P95; its metric follows Prometheus).
        """
        with self._lock:
            self._seen.add((namespace, name))
            row = self._routes.get((namespace, name))
            if row is not None and row.p95 is not None and reading is not None:
                row.p95 = reading

    def retain_routes(self, keep: Iterable[tuple[str, str]]) -> None:
        """Forget every route not in ``keep`` (``(namespace, name)`` pairs)."""
        kept = set(keep)
        with self._lock:
            gone = [key for key in self._routes if key not in kept]
        for namespace, name in gone:
            self.forget_route(namespace, name)

    def tracked_routes(self) -> set[tuple[str, str]]:
        with self._lock:
            return set(self._routes)

    # -- actions -------------------------------------------------------------------------
    def actions_done(self, actions: Iterable[Action], outcome: str) -> None:
        """Count actions by type: ``applied``, ``failed`` or ``planned`` (dry run)."""
        for action in actions:
            self.actions.labels(action.metric_label, _known(outcome, ACTION_OUTCOMES)).inc()

    # -- the loop ------------------------------------------------------------------------
    def latency_read(
        self,
        seconds: float,
        observations: Iterable[LatencyObservation | None],
        queries_sent: int | None = None,
    ) -> None:
        """The observe step of one cycle: its duration, each route's outcome, and the
        queries sent so far (a running total, as ``LatencyObserver.queries_sent``)."""
        self.prometheus_duration.observe(seconds)
        counts = {outcome: 0 for outcome in Outcome}
        for obs in observations:
            counts[obs.outcome if obs is not None else Outcome.UNAVAILABLE] += 1
        for outcome, count in counts.items():
            self.latency_readings.labels(outcome.value).set(count)
            if outcome in PROMETHEUS_ERRORS and count:
                self.prometheus_errors.labels(outcome.value).inc()
        if queries_sent is not None:
            before = self._queries_seen
            self._queries_seen = queries_sent
            if before is not None and queries_sent >= before:
                self.prometheus_queries.inc(queries_sent - before)
            elif before is None:
                self.prometheus_queries.inc(queries_sent)

    def cycle_done(self, duration_seconds: float, states: Mapping[str, int]) -> None:
        """A completed cycle: its duration and routes by state. Routes it did not report
        (deleted, or held for a problem such as a missing Deployment) lose their series."""
        self.cycle_duration.observe(duration_seconds)
        self.cycles.labels("ok").inc()
        self.last_cycle.set(time.time())
        for state in State:
            self.routes.labels(state.value).set(states.get(state.value, 0))
        with self._lock:
            seen, self._seen = self._seen, set()
        self.retain_routes(seen)

    def fast_lane_done(
        self, duration_seconds: float, routes: int, queries_sent: int | None
    ) -> None:
        """A fast-lane pass: its duration, its routes, and its own source's running total
        of queries (counted in ``prometheus_queries`` with the full cycles')."""
        self.fast_lane_duration.observe(duration_seconds)
        self.fast_lane_routes.set(routes)
        if queries_sent is not None:
            before, self._fast_queries_seen = self._fast_queries_seen, queries_sent
            self.prometheus_queries.inc(max(0, queries_sent - before))

    def origin_copies(self, copies: Mapping[str, tuple[int, bool]]) -> None:
        """Per kind: the objects the watch-fed copy holds, and whether it is current."""
        for kind, (objects, current) in copies.items():
            self.origin_objects.labels(kind).set(objects)
            self.origin_copy_current.labels(kind).set(1 if current else 0)

    def cycle_failed(self) -> None:
        self.cycles.labels("failed").inc()

    # -- Cloudflare ----------------------------------------------------------------------
    def cloudflare_request(
        self, operation: str, outcome: str = "ok", duration_seconds: float | None = None
    ) -> None:
        """One request sent to Cloudflare. ``operation`` is a short fixed name (e.g.
        ``get_zone_setting``, ``put_cache_rules``, ``list_dns_records``); ``outcome`` one of
        ``CLOUDFLARE_OUTCOMES`` (anything else counts as ``unavailable``)."""
        kind = outcome if outcome in CLOUDFLARE_OUTCOMES else "unavailable"
        self.cf_requests.labels(operation, kind).inc()
        if kind != "ok":
            self.cf_errors.labels(operation, kind).inc()
        if kind == "rate_limited":
            self.cf_rate_limited.labels(operation).inc()
        if duration_seconds is not None:
            self.cf_duration.labels(operation).observe(duration_seconds)

    def cloudflare_not_sent(self, reason: str) -> None:
        """A request the operator held back: ``budget_spent`` or ``rate_limit_wait``."""
        self.cf_not_sent.labels(_known(reason, CLOUDFLARE_NOT_SENT)).inc()

    def cloudflare_budget(self, namespace: str, zone: str, remaining: int, limit: int) -> None:
        """The zone token's request budget now (call after requests, or at each sync)."""
        self.cf_budget_remaining.labels(namespace, zone).set(remaining)
        self.cf_budget_limit.labels(namespace, zone).set(limit)

    def cloudflare_zone_synced(self, namespace: str, zone: str, synced: bool) -> None:
        self.cf_zone_synced.labels(namespace, zone).set(1 if synced else 0)

    def forget_cloudflare_zone(self, namespace: str, zone: str) -> None:
        """The CloudflareZone is deleted: remove its series."""
        for gauge in (self.cf_budget_remaining, self.cf_budget_limit, self.cf_zone_synced):
            with contextlib.suppress(KeyError):  # never set, or forgotten already
                gauge.remove(namespace, zone)


def _edge_series(
    edge: RouteEdge | None, conditions: Sequence[ConditionInput]
) -> tuple[tuple[str, float], ...]:
    """The route's ``EDGE_SERIES`` values (none until a window is read)."""
    if edge is None:
        return ()
    found: list[tuple[str, float]] = [
        ("edge_524", float(edge.errors_524)),
        ("edge_5xx", float(edge.errors_5xx)),
        ("edge_requests", float(edge.requests)),
    ]
    if edge.p95_seconds is not None:
        found.append(("edge_p95", edge.p95_seconds))
    status = {c.type: c.status for c in conditions}
    if ConditionType.EDGE_ERRORS in status:
        found.append(("edge_errors", 1.0 if status[ConditionType.EDGE_ERRORS] == "True" else 0.0))
    agrees = status.get(ConditionType.EDGE_AGREES)
    if agrees is not None and agrees != ConditionStatus.UNKNOWN:
        found.append(("edge_agrees", 1.0 if agrees == ConditionStatus.TRUE else 0.0))
    return tuple(found)


def _known(value: str, allowed: Sequence[str]) -> str:
    return value if value in allowed else "other"


# -- the process-wide instance and the endpoint -------------------------------------------
METRICS = OperatorMetrics()
