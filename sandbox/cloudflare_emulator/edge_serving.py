"""The edge serving visitor requests: which requests Cloudflare sees, and which get a 524.

The sandbox's origins do not send real traffic through anything; they report what their
requests were (host, path, method, time to first byte, status) and the emulator answers
what Cloudflare's edge would have done with each one, recording it for the GraphQL
Analytics API (``analytics.Traffic``) and for the demo (``summary``):

- The zone is the one whose name is the longest suffix of the host (``example.com`` for
  ``api.example.com``). A host with no proxied DNS record in it (no record, or DNS-only,
  following ``Store.effectively_proxied``) never reaches Cloudflare: nothing is recorded.
- The read timeout in force is the one ``edge_cache.evaluate`` gives the request under the
  zone's Cache Rules and ``proxy_read_timeout``. A request whose origin takes longer than
  that to the first byte gets a 524 from the edge; any other keeps the origin's status.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sandbox.cloudflare_emulator import edge_cache
from sandbox.cloudflare_emulator.analytics import Hit, Traffic
from sandbox.cloudflare_emulator.state import CACHE_SETTINGS_PHASE, Store, Zone

TIMEOUT_STATUS = 524


@dataclass(frozen=True)
class VisitorRequest:
    """One request a visitor sent to a host of the zone, as its origin answered it."""

    host: str
    path: str
    method: str
    ttfb_seconds: float
    """Time the origin takes to the first byte of its answer."""
    status: int = 200
    """The origin's status, what the edge answers when it waits long enough."""
    at: float | None = None
    """When the request was received (epoch seconds); ``None``: now (the traffic's clock)."""
    cache_control: str | None = None
    """The origin's Cache-Control (``edge_cache``: decides a ``bypass_by_default`` rule)."""

    def __post_init__(self) -> None:
        if not (self.ttfb_seconds >= 0 and math.isfinite(self.ttfb_seconds)):
            raise ValueError(f"ttfb_seconds must be >= 0, got {self.ttfb_seconds!r}")
        if not 100 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status, got {self.status!r}")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VisitorRequest:
        """``{"host", "path", "method", "ttfbSeconds", "status"?, "at"?, "cacheControl"?}``."""
        known = {"host", "path", "method", "ttfbSeconds", "status", "at", "cacheControl"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown request fields {sorted(unknown)}; known: {sorted(known)}")
        at = data.get("at")
        return cls(
            host=_text(data, "host"),
            path=_text(data, "path"),
            method=_text(data, "method"),
            ttfb_seconds=float(data["ttfbSeconds"]),
            status=int(data.get("status", 200)),
            at=None if at is None else float(at),
            cache_control=data.get("cacheControl"),
        )


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} must be a non-empty string, got {value!r}")
    return value


def zone_of(store: Store, host: str) -> Zone | None:
    """The zone whose name is the longest suffix of ``host`` (None: no zone has it)."""
    name = host.rstrip(".").lower()
    found = [
        (len(zone_name), zone)
        for zone in store.zones.values()
        if (zone_name := zone.name.rstrip(".").lower())
        and (name == zone_name or name.endswith("." + zone_name))
    ]
    return max(found, key=lambda f: f[0])[1] if found else None


def serve(
    store: Store,
    traffic: Traffic,
    requests: Sequence[VisitorRequest],
    *,
    bypass_by_default_keeps_read_timeout: bool = False,
) -> list[int | None]:
    """The edge's status for each request, recorded as the edge saw it; ``None`` for a
    request Cloudflare never sees (its host has no proxied record in any zone)."""
    statuses: list[int | None] = []
    hits: list[Hit] = []
    now = traffic.clock()
    with store.lock:
        for request in requests:
            zone = zone_of(store, request.host)
            if zone is None or not store.effectively_proxied(zone.id, request.host):
                statuses.append(None)
                continue
            ruleset = zone.entrypoints.get(CACHE_SETTINGS_PHASE)
            verdict = edge_cache.evaluate(
                list(ruleset.rules) if ruleset is not None else [],
                zone.proxy_read_timeout,
                edge_cache.EdgeRequest(
                    request.method,
                    request.host,
                    request.path,
                    origin_cache_control=request.cache_control,
                ),
                bypass_by_default_keeps_read_timeout=bypass_by_default_keeps_read_timeout,
            )
            if request.ttfb_seconds > verdict.read_timeout:
                # The edge stopped waiting at its read timeout. What Cloudflare records as
                # originResponseDuration on a 524 is not documented: the emulator's choice
                # is the time it waited, the read timeout.
                status, origin_ms = TIMEOUT_STATUS, verdict.read_timeout * 1000.0
            else:
                status, origin_ms = request.status, request.ttfb_seconds * 1000.0
            at = now if request.at is None else request.at
            hits.append(
                Hit(at, zone.id, request.host.lower(), request.path, request.method.upper(),
                    status, origin_ms)
            )  # fmt: skip
            statuses.append(status)
    for hit in hits:
        traffic.record(hit)
    return statuses


def summary(
    traffic: Traffic,
    window_seconds: float = 1.0,
    *,
    since: float | None = None,
    host: str | None = None,
) -> list[dict[str, Any]]:
    """Every request the edge has seen (late or not: this is not the GraphQL API), counted
    per window of ``window_seconds`` by host, path, method and edge status, oldest first:
    ``[{"start", "host", "path", "method", "status", "count"}]``."""
    if not (window_seconds > 0 and math.isfinite(window_seconds)):
        raise ValueError(f"window_seconds must be > 0, got {window_seconds!r}")
    with traffic.lock:
        hits = list(traffic.hits)
    counts: collections.Counter[tuple[float, str, str, str, int]] = collections.Counter()
    for hit in hits:
        if (since is not None and hit.at < since) or (host is not None and hit.host != host):
            continue
        start = math.floor(hit.at / window_seconds) * window_seconds
        counts[(start, hit.host, hit.path, hit.method, hit.status)] += 1
    return [
        {"start": k[0], "host": k[1], "path": k[2], "method": k[3], "status": k[4], "count": n}
        for k, n in sorted(counts.items())
    ]
