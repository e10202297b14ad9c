"""Reading Cloudflare's own view of a zone (pure): which window, whose paths, what it says.

* **Windows.** Cloudflare's analytics are some minutes late (``delay``). The operator asks
  only for a window Cloudflare has finished: windows are aligned to ``interval`` (so every
  replica and every restart asks for the same ones), and the newest finished one ends at
  ``floor((now - delay) / interval) * interval``. A window is read once; the next starts
  where it ended (several intervals when a read comes late, none skipped).
* **Attribution.** Each host and path the edge saw belongs to the route of the same host
  whose path prefix covers it (``decide.rule_paths.covers``), the longest prefix winning, as
  the routes' own Cache Rules do. A route's edge P95 is the largest P95 of its paths: exact
  for one path, an upper bound for several (a mixture's P95 is never above its largest
  part's). Paths no route covers are the zone's candidates for *unbudgeted* slow paths.
* **Conditions.** ``EdgeErrors``: 524s at the edge for a route that Prometheus, over the
  same window, put within its budget (an alarm: a hop the histogram does not see, a
  tunnel's transport errors, an edge timeout shorter than the budget). ``EdgeAgrees``: the
  edge's P95 and Prometheus' P95 over the same window differ by at most ``fraction`` of the
  budget. The ladder never acts on either: the edge's view is sampled and late.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from timeout_budget.decide import rule_paths
from timeout_budget.decide.context import secs
from timeout_budget.model.conditions import ConditionInput, ConditionType
from timeout_budget.model.conditions import ConditionStatus as S
from timeout_budget.model.edge_view import (
    EdgePath,
    RouteEdge,
    UnbudgetedPath,
    Window,
    ZoneEdgeView,
)
from timeout_budget.model.spec import MAX_EDGE_TIMEOUT_SECONDS, RouteKey
from timeout_budget.model.timestamps import rfc3339

MAX_UNBUDGETED = 20
"""Unbudgeted paths listed in a zone's status, the worst first."""


def finished_window(now: float, interval: float, delay: float) -> Window:
    """The newest window Cloudflare has finished at ``now``: aligned to ``interval``,
    ending at least ``delay`` seconds ago."""
    end = math.floor((now - delay) / interval) * interval
    return Window(end - interval, end)


MAX_SPAN_SECONDS = 86_400.0
"""The widest window one query may cover (Cloudflare's ``maxDuration`` for the dataset)."""


def due(
    last_end: float | None,
    now: float,
    interval: float,
    delay: float,
    max_span: float = MAX_SPAN_SECONDS,
) -> Window | None:
    """The window to read now, or ``None`` while the newest finished one was read. After
    a first read, a window starts where the last one ended, so no minute is skipped when
    reads come late (a zone read every 30 s with a 10 s interval, an outage): it then
    spans several intervals, at most ``max_span`` seconds."""
    window = finished_window(now, interval, delay)
    if last_end is None:
        return window
    if window.end <= last_end:
        return None
    return Window(max(last_end, window.end - max_span), window.end)


@dataclass(frozen=True, slots=True)
class Cover:
    """A route's claim on the edge's paths: its host and path prefix."""

    key: RouteKey
    host: str
    path_prefix: str


def attribute(
    view: ZoneEdgeView, covers: Iterable[Cover]
) -> tuple[dict[RouteKey, RouteEdge], list[EdgePath]]:
    """Each route's share of the view (every route given gets one, with zero requests
    when the edge saw none of its paths), and the paths no route covers."""
    by_host: dict[str, list[tuple[str, RouteKey]]] = {}
    for cover in covers:
        prefix = _normalized(cover.path_prefix)
        by_host.setdefault(cover.host.lower(), []).append((prefix, cover.key))
    for claims in by_host.values():
        claims.sort(key=lambda c: -len(c[0]))  # the longest prefix first
    owned: dict[RouteKey, list[EdgePath]] = {
        key: [] for claims in by_host.values() for _, key in claims
    }
    nobody: list[EdgePath] = []
    for path in view.paths:
        normalized = _normalized(path.path)
        owner = next(
            (k for p, k in by_host.get(path.host.lower(), ()) if rule_paths.covers(p, normalized)),
            None,
        )
        if owner is None:
            nobody.append(path)
        else:
            owned[owner].append(path)
    return {key: _route_edge(view.window, paths) for key, paths in owned.items()}, nobody


def _normalized(path: str) -> str:
    try:
        return rule_paths.normalize(path)
    except rule_paths.UnmatchablePrefix:
        return path


def _route_edge(window: Window, paths: Sequence[EdgePath]) -> RouteEdge:
    measured = [p.p95_seconds for p in paths if p.p95_seconds is not None and p.requests > 0]
    return RouteEdge(
        window=window,
        requests=sum(p.requests for p in paths),
        errors_5xx=sum(p.errors_5xx for p in paths),
        errors_524=sum(p.errors_524 for p in paths),
        p95_seconds=max(measured) if measured else None,
        paths=len(paths),
        sample_interval=max((p.sample_interval for p in paths), default=1.0),
    )


def unbudgeted(
    paths: Iterable[EdgePath], zone_timeout_seconds: float, near_fraction: float
) -> list[UnbudgetedPath]:
    """Paths no route covers that returned 524s or whose edge P95 reached
    ``near_fraction`` of the zone's timeout: the 524s the operator cannot prevent yet.
    The worst first (most 524s, then slowest), at most ``MAX_UNBUDGETED``."""
    line = near_fraction * zone_timeout_seconds
    found = [
        UnbudgetedPath(p.host, p.path, p.requests, p.errors_524, p.p95_seconds)
        for p in paths
        if p.errors_524 > 0 or (p.p95_seconds is not None and p.p95_seconds >= line)
    ]
    found.sort(key=lambda u: (-u.errors_524, -(u.p95_seconds or 0.0), u.host, u.path))
    return found[:MAX_UNBUDGETED]


def suggested_budget_seconds(p95_seconds: float | None, zone_timeout_seconds: int) -> int:
    """A budget for an unbudgeted path: twice its edge P95, rounded up to ten seconds, so
    its P95 sits at half the budget; never below the zone's timeout, at most 6000 s."""
    if p95_seconds is None:
        return zone_timeout_seconds
    doubled = int(math.ceil(2 * p95_seconds / 10.0) * 10)
    return min(MAX_EDGE_TIMEOUT_SECONDS, max(zone_timeout_seconds, doubled))


# -- conditions -------------------------------------------------------------------------

EDGE_ERRORS = ConditionType.EDGE_ERRORS
EDGE_AGREES = ConditionType.EDGE_AGREES


def conditions(
    edge: RouteEdge | None, budget_seconds: float, fraction: float, unread: str | None = None
) -> tuple[ConditionInput, ...]:
    """``EdgeErrors`` and ``EdgeAgrees`` for a route that syncs through a zone; ``unread``
    says why there is no view yet (``edge`` is then ``None``)."""
    if edge is None:
        why = unread or "Cloudflare's analytics for the zone have not been read yet"
        return (
            ConditionInput(EDGE_ERRORS, S.UNKNOWN, "NotRead", why),
            ConditionInput(EDGE_AGREES, S.UNKNOWN, "NotRead", why),
        )
    return edge_errors(edge, budget_seconds), edge_agrees(edge, budget_seconds, fraction)


def edge_errors(edge: RouteEdge, budget_seconds: float) -> ConditionInput:
    span = _span(edge)
    if edge.errors_524 == 0:
        return ConditionInput(
            EDGE_ERRORS,
            S.FALSE,
            "No524s",
            f"no 524 at the edge in {span} ({edge.requests} requests, {edge.errors_5xx} 5xx)",
        )
    seen = f"{edge.errors_524} 524s at the edge in {span} (of {edge.requests} requests)"
    if not edge.compared:
        return ConditionInput(
            EDGE_ERRORS,
            S.UNKNOWN,
            "NotCompared",
            f"{seen}; Prometheus has not been asked about the same window yet",
        )
    prom = edge.prometheus_p95_seconds
    if prom is not None and prom >= budget_seconds:
        return ConditionInput(
            EDGE_ERRORS,
            S.FALSE,
            "OverBudget",
            f"{seen}, while Prometheus' P95 over the same window was {secs(prom)}, over the "
            f"{secs(budget_seconds)} budget: expected, the ladder acts on it",
        )
    said = (
        f"Prometheus' P95 over the same window was {secs(prom)}, within the "
        f"{secs(budget_seconds)} budget"
        if prom is not None
        else "Prometheus had no P95 for the same window"
    )
    return ConditionInput(
        EDGE_ERRORS,
        S.TRUE,
        "Edge524sWithinBudget",
        f"{seen}, while {said}: a hop the histogram does not see (queueing in front of the "
        "pods, a tunnel's transport errors) or an edge read timeout below the budget",
    )


def edge_agrees(edge: RouteEdge, budget_seconds: float, fraction: float) -> ConditionInput:
    span = _span(edge)
    if edge.p95_seconds is None:
        return ConditionInput(
            EDGE_AGREES, S.UNKNOWN, "NoEdgeRequests", f"the edge measured no request in {span}"
        )
    if not edge.compared:
        return ConditionInput(
            EDGE_AGREES,
            S.UNKNOWN,
            "NotCompared",
            f"Prometheus has not been asked for {span} yet",
        )
    prom = edge.prometheus_p95_seconds
    if prom is None:
        return ConditionInput(
            EDGE_AGREES,
            S.UNKNOWN,
            "NoPrometheusData",
            f"the edge's P95 in {span} was {secs(edge.p95_seconds)}; Prometheus had none for "
            "the same window",
        )
    gap, allowed = edge.p95_seconds - prom, fraction * budget_seconds
    both = (
        f"edge P95 {secs(edge.p95_seconds)}{_upper(edge)} and Prometheus P95 {secs(prom)} in {span}"
    )
    if abs(gap) <= allowed:
        return ConditionInput(
            EDGE_AGREES,
            S.TRUE,
            "Agrees",
            f"{both}: within {fraction:g} of the {secs(budget_seconds)} budget",
        )
    if gap > 0:
        return ConditionInput(
            EDGE_AGREES,
            S.FALSE,
            "EdgeSlower",
            f"{both}: the edge sees {secs(gap)} more, over {fraction:g} of the "
            f"{secs(budget_seconds)} budget; the in-cluster histogram misses a hop (queueing "
            "in front of the pods, the ingress) or its labels select other series",
        )
    return ConditionInput(
        EDGE_AGREES,
        S.FALSE,
        "EdgeFaster",
        f"{both}: Prometheus sees {secs(-gap)} more, over {fraction:g} of the "
        f"{secs(budget_seconds)} budget; the histogram's labels may select other series than "
        "this route's",
    )


def _span(edge: RouteEdge) -> str:
    start = rfc3339(edge.window.start, whole_seconds=True)
    end = rfc3339(edge.window.end, whole_seconds=True)
    sampled = f", sampled 1 in {edge.sample_interval:g}" if edge.sample_interval > 1 else ""
    return f"the window {start} to {end}{sampled}"


def _upper(edge: RouteEdge) -> str:
    return f" (the largest of its {edge.paths} paths')" if edge.paths > 1 else ""
