"""The edge reader: one GraphQL Analytics query per CloudflareZone and finished window.

Cloudflare's ``httpRequestsAdaptiveGroups`` dataset counts every response of the zone by
host, path and edge status, with the origin's response time as the edge measured it. Per
zone and window (``decide.edge_view.due``) the reader sends **one** query with two dataset
nodes: every host and path of the zone with its count and P95, and the 5xx by host, path and
status (524s among them). Covering the whole zone, not only the routes' paths, is what lets
the operator see slow paths nobody budgeted.

Before the first read, and every ``PROBE_SECONDS`` or after a refusal, it asks the dataset's
``settings`` for the zone: a plan without the dataset (or without the fields used) is said
in the zone's status, and nothing more is spent on it until the next probe.

The SDK does not model GraphQL, so the query goes through its HTTP client
(``CloudflareClient.graphql``): the same token, base URL, timeouts and rate-limit header as
every other call, and its own budget (Cloudflare's 300 per 5 minutes per user). The query
text is written here and checked against Cloudflare's schema of these fields in a unit test
(graphql-core, a development dependency only).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from timeout_budget.clients.cloudflare_errors import (
    CloudflareError,
    DatasetUnavailable,
    PermissionMissing,
    RateLimited,
)
from timeout_budget.decide import edge_view
from timeout_budget.edge.zone import ZoneState
from timeout_budget.model.edge_view import EdgePath, RouteEdge, Window, ZoneEdgeView
from timeout_budget.model.spec import RouteKey

log = logging.getLogger("timeout_budget.edge")

DATASET = "httpRequestsAdaptiveGroups"
PROBE_SECONDS = 3600.0
"""How often the dataset's availability for the zone is asked again."""
RETRY_SECONDS = 60.0
"""After a failed read (not rate-limited), the window is tried again this soon."""
PAGE_SIZE = 10_000
"""Groups per node: Cloudflare's ``maxPageSize`` for the dataset (the probe may lower it)."""
FIELDS_USED = frozenset(
    {
        "count",
        "avg_sampleInterval",
        "dimensions_clientRequestHTTPHost",
        "dimensions_clientRequestPath",
        "dimensions_edgeResponseStatus",
        "quantiles_originResponseDurationMsP95",
    }
)
"""The dataset's fields the query reads, as ``settings.availableFields`` names them."""

PROBE = """
query EdgeViewAccess($zoneTag: string!) {
  viewer {
    zones(filter: {zoneTag: $zoneTag}) {
      settings {
        httpRequestsAdaptiveGroups {
          enabled
          availableFields
          maxDuration
          maxPageSize
          notOlderThan
        }
      }
    }
  }
}
"""

QUERY = """
query EdgeView($zoneTag: string!, $start: Time!, $end: Time!, $limit: uint64!) {
  viewer {
    zones(filter: {zoneTag: $zoneTag}) {
      paths: httpRequestsAdaptiveGroups(
        filter: {datetime_geq: $start, datetime_lt: $end, requestSource: "eyeball"}
        limit: $limit
        orderBy: [count_DESC]
      ) {
        count
        avg { sampleInterval }
        dimensions { clientRequestHTTPHost clientRequestPath }
        quantiles { originResponseDurationMsP95 }
      }
      errors: httpRequestsAdaptiveGroups(
        filter: {
          datetime_geq: $start
          datetime_lt: $end
          requestSource: "eyeball"
          edgeResponseStatus_geq: 500
        }
        limit: $limit
        orderBy: [count_DESC]
      ) {
        count
        dimensions { clientRequestHTTPHost clientRequestPath edgeResponseStatus }
      }
    }
  }
}
"""
QUERY_COST = 2
"""One zone times two dataset nodes."""
PROBE_COST = 1


@dataclass
class Analytics:
    """What the operator knows of one zone's analytics."""

    available: bool | None = None
    """``None``: not probed yet."""
    message: str = "Cloudflare's analytics for the zone have not been read yet"
    page_size: int = PAGE_SIZE
    max_duration: float | None = None
    probed_at: float | None = None
    view: ZoneEdgeView | None = None
    retry_at: float | None = None
    """A failed read waits until then."""
    compared: dict[RouteKey, tuple[float, float | None]] = field(default_factory=dict)
    """Per route: the window end Prometheus was asked for, and its P95 over the window."""
    attributed: tuple[object, dict[RouteKey, RouteEdge], list[EdgePath]] | None = None
    """The view split between the routes, and for which view and covers."""

    @property
    def attempted(self) -> bool:
        """Whether this process has tried the zone's analytics yet: probed, read a window,
        or failed and waits (``message`` then says why)."""
        return self.available is not None or self.view is not None or self.retry_at is not None

    def due(self, now: float, interval: float, delay: float) -> Window | None:
        """The window to read now, if any."""
        if self.retry_at is not None and now < self.retry_at:
            return None
        last = self.view.window.end if self.view is not None else None
        return edge_view.due(last, now, interval, delay)


async def read(zone: ZoneState, analytics: Analytics, now: float) -> None:
    """Probe if due, then read the zone's newest finished window; the outcome lands in
    ``analytics`` (never raises for Cloudflare's answers)."""
    spec = zone.spec.analytics
    if not spec.enabled:
        analytics.available, analytics.view = None, None
        analytics.message = "spec.analytics.enabled is false: Cloudflare's analytics not read"
        return
    window = analytics.due(now, spec.interval_seconds, spec.delay_seconds)
    if window is None:
        return
    try:
        if analytics.probed_at is None or now - analytics.probed_at >= PROBE_SECONDS:
            await _probe(zone, analytics, now)
        if not analytics.available:
            analytics.retry_at = (analytics.probed_at or now) + PROBE_SECONDS
            return
        data = await zone.client.graphql(
            f"read the analytics of zone {zone.spec.zone_id}",
            QUERY,
            {
                "zoneTag": zone.spec.zone_id,
                "start": _time(window.start),
                "end": _time(window.end),
                "limit": analytics.page_size,
            },
            cost=QUERY_COST,
        )
    except (DatasetUnavailable, PermissionMissing) as exc:
        analytics.available, analytics.message = False, str(exc)
        analytics.probed_at = now
        analytics.retry_at = now + PROBE_SECONDS
        log.warning("%s: analytics not available: %s", zone.label, exc)
        return
    except CloudflareError as exc:
        wait = exc.retry_after if isinstance(exc, RateLimited) else RETRY_SECONDS
        analytics.retry_at = now + wait
        analytics.message = f"not read: {exc}" + (
            " (showing the window before)" if analytics.view is not None else ""
        )
        log.warning("%s: analytics not read: %s", zone.label, exc)
        return
    analytics.view = parse(data, window, now, analytics.page_size)
    analytics.retry_at = None
    analytics.message = _summary(analytics.view)


async def _probe(zone: ZoneState, analytics: Analytics, now: float) -> None:
    data = await zone.client.graphql(
        f"ask which analytics zone {zone.spec.zone_id} may read",
        PROBE,
        {"zoneTag": zone.spec.zone_id},
        cost=PROBE_COST,
    )
    analytics.probed_at = now
    settings = _first_zone(data).get("settings")
    found = settings.get(DATASET) if isinstance(settings, Mapping) else None
    if not isinstance(found, Mapping) or found.get("enabled") is not True:
        analytics.available = False
        analytics.message = (
            f"the zone's plan has no access to Cloudflare's {DATASET} dataset: no 524s or "
            "origin P95 from the edge (the rest of the operator works)"
        )
        return
    fields = found.get("availableFields")
    missing = sorted(FIELDS_USED - set(fields)) if isinstance(fields, list) else []
    if missing:
        analytics.available = False
        analytics.message = (
            f"the zone's plan lacks the {DATASET} fields {', '.join(missing)}: no edge view"
        )
        return
    analytics.available = True
    size = found.get("maxPageSize")
    analytics.page_size = min(PAGE_SIZE, size) if isinstance(size, int) and size > 0 else PAGE_SIZE


def parse(data: Mapping[str, Any], window: Window, now: float, page_size: int) -> ZoneEdgeView:
    """The query's answer as one ``EdgePath`` per host and path."""
    zone = _first_zone(data)
    paths: dict[tuple[str, str], dict[str, Any]] = {}
    groups = _list(zone.get("paths"))
    for group in groups:
        dims = _map(group.get("dimensions"))
        key = (str(dims.get("clientRequestHTTPHost", "")), str(dims.get("clientRequestPath", "")))
        p95 = _map(group.get("quantiles")).get("originResponseDurationMsP95")
        interval = _map(group.get("avg")).get("sampleInterval")
        paths[key] = {
            "requests": _int(group.get("count")),
            "p95_seconds": float(p95) / 1000.0 if isinstance(p95, int | float) else None,
            "sample_interval": float(interval) if isinstance(interval, int | float) else 1.0,
            "errors_5xx": 0,
            "errors_524": 0,
        }
    errors = _list(zone.get("errors"))
    for group in errors:
        dims = _map(group.get("dimensions"))
        key = (str(dims.get("clientRequestHTTPHost", "")), str(dims.get("clientRequestPath", "")))
        entry = paths.setdefault(
            key,
            {
                "requests": 0,
                "p95_seconds": None,
                "sample_interval": 1.0,
                "errors_5xx": 0,
                "errors_524": 0,
            },
        )
        count = _int(group.get("count"))
        entry["errors_5xx"] += count
        if dims.get("edgeResponseStatus") == 524:
            entry["errors_524"] += count
    for entry in paths.values():
        # A path whose few 5xx made the errors page but not the paths page still counts them.
        entry["requests"] = max(entry["requests"], entry["errors_5xx"])
    return ZoneEdgeView(
        window=window,
        read_at=now,
        paths=tuple(EdgePath(host, path, **values) for (host, path), values in paths.items()),
        truncated=len(groups) >= page_size or len(errors) >= page_size,
    )


def _summary(view: ZoneEdgeView) -> str:
    requests = sum(p.requests for p in view.paths)
    failed = sum(p.errors_524 for p in view.paths)
    cut = "; the least requested paths are missing (page full)" if view.truncated else ""
    return (
        f"{requests} requests, {failed} 524s on {len(view.paths)} host/path(s) in the window "
        f"{_time(view.window.start)} to {_time(view.window.end)}{cut}"
    )


def _first_zone(data: Mapping[str, Any]) -> Mapping[str, Any]:
    zones = _list(_map(data.get("viewer")).get("zones"))
    return zones[0] if zones else {}


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
