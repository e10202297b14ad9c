"""Cloudflare's own view of a zone's traffic, from its GraphQL Analytics API.

The edge counts every response it gave (a 524 when it stopped waiting for the origin) and
measures the origin's time to answer as it saw it. That view is sampled and some minutes
late, so the ladder never acts on it: it verifies what the operator did (no 524s after a
raise) and raises alarms (524s the in-cluster histogram cannot explain, a histogram that
misses a hop, slow paths that no TimeoutBudget covers). Values only; ``decide.edge_view``
reads them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Window:
    """A finished window of Cloudflare's data, ``[start, end)`` in Unix seconds."""

    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class EdgePath:
    """One host and path as the edge saw it in a window."""

    host: str
    path: str
    requests: int
    """Requests (Cloudflare's count, already extrapolated from its sample)."""
    errors_5xx: int = 0
    errors_524: int = 0
    p95_seconds: float | None = None
    """The origin's response time at P95 as the edge measured it; ``None``: not measured."""
    sample_interval: float = 1.0
    """Cloudflare's average sample interval (1: every request counted; 10: one in ten)."""


@dataclass(frozen=True, slots=True)
class ZoneEdgeView:
    """What one read of the zone's analytics returned."""

    window: Window
    read_at: float
    paths: tuple[EdgePath, ...]
    truncated: bool = False
    """More host/path groups than the page holds: the least requested ones are missing."""


@dataclass(frozen=True, slots=True)
class RouteEdge:
    """A route's share of a zone's view: the paths under its host and path prefix that no
    longer prefix of another route covers."""

    window: Window
    requests: int
    errors_5xx: int
    errors_524: int
    p95_seconds: float | None
    """The largest P95 among its paths: exact for one path, an upper bound for several
    (a mixture's P95 is never above its largest part's)."""
    paths: int
    sample_interval: float
    prometheus_p95_seconds: float | None = None
    """Prometheus' P95 for the route over the same window, once asked."""
    compared: bool = False
    """Whether Prometheus was asked for the window (its answer may still be ``None``)."""


@dataclass(frozen=True, slots=True)
class UnbudgetedPath:
    """A slow (or failing) path at the edge that no TimeoutBudget covers."""

    host: str
    path: str
    requests: int
    errors_524: int
    p95_seconds: float | None

    def to_status(self) -> dict[str, object]:
        return {
            "host": self.host,
            "path": self.path,
            "requests": self.requests,
            "errors524": self.errors_524,
            "originP95Seconds": None if self.p95_seconds is None else round(self.p95_seconds, 2),
        }
