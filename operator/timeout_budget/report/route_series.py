"""The per-route series (``timeout_budget_route_*``), kept as one small row per route and
built when scraped.

prometheus_client's labelled children cost ~600 bytes each (a value, two locks, the
label tuple): six per route, ~35 MB at 10,000 routes, for numbers that change once a
cycle. A custom collector is the library's way for such series
(prometheus.github.io/client_python/collector/custom).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

PREFIX = "timeout_budget"


class RouteRow:
    """One route's current values (``None``: the series is absent)."""

    __slots__ = (
        "budget",
        "covered",
        "edge",
        "edge_synced",
        "p95",
        "refusals",
        "replicas",
        "state",
    )

    def __init__(self) -> None:
        self.budget: float | None = None
        self.replicas: float | None = None
        self.p95: float | None = None
        self.state: str | None = None
        self.edge_synced: float | None = None
        self.refusals: frozenset[str] = frozenset()
        self.covered: tuple[tuple[str, float], ...] = ()
        """Per method group (``GET,HEAD``), 1 when something covers it at the edge."""
        self.edge: tuple[tuple[str, float], ...] = ()
        """Cloudflare's view of the route's last window (``EDGE_SERIES`` keys)."""


ROUTE_SERIES = {
    "p95": (
        f"{PREFIX}_route_p95_seconds",
        "Observed latency quantile of the route (P95 unless spec.latency.quantile says "
        "otherwise); absent when there is no data.",
    ),
    "budget": (
        f"{PREFIX}_route_budget_seconds",
        "The route's timeout budget in force (spec, else the zone's timeout, else 120).",
    ),
    "ratio": (
        f"{PREFIX}_route_budget_ratio",
        "p95 / budget of the route; absent when there is no data.",
    ),
    "state": (
        f"{PREFIX}_route_state",
        "1 for the route's current state (Healthy, AtRisk, Breaching, NoData, Rerouted, "
        "Paused); one series per route.",
    ),
    "replicas": (
        f"{PREFIX}_route_desired_replicas",
        "Replicas the operator asks for the route's origin (HPA minReplicas or "
        "Deployment replicas).",
    ),
    "edge_synced": (
        f"{PREFIX}_route_edge_synced",
        "1 when the route's Cloudflare settings are in sync (EdgeSynced=True), 0 when "
        "not; absent for routes without edge sync.",
    ),
    "covered": (
        f"{PREFIX}_route_edge_covered",
        "Per method group of the route (method_group GET,HEAD or POST,...): 1 when its Cache "
        "Rule, the zone's read timeout or a DNS-only hostname covers it, 0 when nothing does "
        "(status.edgeCoverage says by what); absent without a known zone.",
    ),
}

EDGE_SERIES = {
    "edge_524": (
        f"{PREFIX}_route_edge_524",
        "524s Cloudflare returned for the route in the last window of its analytics read "
        "(CloudflareZone spec.analytics); absent until one is read.",
    ),
    "edge_5xx": (
        f"{PREFIX}_route_edge_5xx",
        "5xx Cloudflare returned for the route in the last window read (524s included).",
    ),
    "edge_requests": (
        f"{PREFIX}_route_edge_requests",
        "Requests Cloudflare counted for the route in the last window read.",
    ),
    "edge_p95": (
        f"{PREFIX}_route_edge_origin_p95_seconds",
        "The origin's P95 response time as Cloudflare measured it in the last window read "
        "(the largest of the route's paths'); absent without requests.",
    ),
    "edge_errors": (
        f"{PREFIX}_route_edge_errors",
        "1 when EdgeErrors is True (524s at the edge while Prometheus put the route within "
        "its budget over the same window), else 0.",
    ),
    "edge_agrees": (
        f"{PREFIX}_route_edge_agrees",
        "1 when EdgeAgrees is True, 0 when False; absent while Unknown.",
    ),
}


class RouteCollector(Collector):
    """The per-route series, built from one small row per route when scraped.

    prometheus_client's labelled children cost ~600 bytes each (a value, two locks, the
    label tuple): six per route, ~35 MB at 10,000 routes, for numbers that change once a
    cycle. A custom collector is the library's way for such series
    (prometheus.github.io/client_python/collector/custom)."""

    def __init__(self, rows: dict[tuple[str, str], RouteRow], lock: threading.Lock) -> None:
        self._rows = rows
        self._lock = lock

    def describe(self) -> Iterable[Metric]:
        series = (*ROUTE_SERIES.values(), *EDGE_SERIES.values())
        return [GaugeMetricFamily(name, text) for name, text in series]

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            rows = [
                (key, r.p95, r.budget, r.state, r.replicas, r.edge_synced, r.covered, r.edge)
                for key, r in self._rows.items()
            ]
        route = ["namespace", "name"]
        family = {k: GaugeMetricFamily(n, t, labels=route) for k, (n, t) in ROUTE_SERIES.items()}
        family["state"] = GaugeMetricFamily(*ROUTE_SERIES["state"], labels=[*route, "state"])
        family["covered"] = GaugeMetricFamily(
            *ROUTE_SERIES["covered"], labels=[*route, "method_group"]
        )
        for key, (name, text) in EDGE_SERIES.items():
            family[key] = GaugeMetricFamily(name, text, labels=route)
        for (namespace, name), p95, budget, state, replicas, edge_synced, covered, edge in rows:
            labels = [namespace, name]
            for series, value in edge:
                family[series].add_metric(labels, value)
            if budget is not None:
                family["budget"].add_metric(labels, budget)
                if p95 is not None:
                    family["p95"].add_metric(labels, p95)
                    family["ratio"].add_metric(labels, p95 / budget)
            if replicas is not None:
                family["replicas"].add_metric(labels, replicas)
            if state is not None:
                family["state"].add_metric([*labels, state], 1)
            if edge_synced is not None:
                family["edge_synced"].add_metric(labels, edge_synced)
            for group, value in covered:
                family["covered"].add_metric([*labels, group], value)
        return list(family.values())
