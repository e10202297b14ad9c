"""Helpers for latency integration tests: specs, histories, and a faithful reference.

The reference functions re-implement, step by step, what Prometheus 2.42 computes for
``histogram_quantile(q, sum by (le) (rate(x_bucket[w])))`` (``extrapolatedRate`` in
``promql/functions.go`` and ``bucketQuantile`` in ``promql/quantile.go``), so tests compare the
operator's observed value with a number derived independently from the raw bucket counts.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from timeout_budget.model.observation import LatencyObservation
from timeout_budget.model.spec import RouteKey, TimeoutBudgetSpec, parse_timeout_budget
from timeout_budget.observe.latency import LatencyObserver
from timeout_budget.observe.settings import PrometheusSettings

T0 = 1_700_000_000.0
"""Histories start here (Nov 2023): far from "now", queried with an explicit time."""


def latency_spec(
    selector: Mapping[str, str] | None = None,
    metric: str | None = "http_request_duration_seconds",
    window: str = "1m",
    budget_seconds: int = 120,
    **latency: Any,
) -> TimeoutBudgetSpec:
    body: dict[str, Any] = {"selector": dict(selector or {}), "window": window, **latency}
    if metric is not None and "query" not in latency:
        body["metric"] = metric
    return parse_timeout_budget(
        {
            "route": {"host": "api.example.com"},
            "budget": {"timeoutSeconds": budget_seconds},
            "latency": body,
            "origin": {"deploymentName": "origin"},
        }
    )


def observe(
    prometheus_url: str,
    routes: Mapping[RouteKey, TimeoutBudgetSpec],
    at: float | None = None,
    **settings: Any,
) -> dict[RouteKey, LatencyObservation]:
    """One observe cycle with a fresh observer (coverage always re-read)."""
    settings.setdefault("coverage_refresh_seconds", 0.0)

    async def run() -> dict[RouteKey, LatencyObservation]:
        async with LatencyObserver(PrometheusSettings(prometheus_url, **settings)) as obs:
            return await obs.observe(routes, at=at)

    return asyncio.run(run())


# ---------------------------------------------------------------------- reference PromQL


@dataclass(frozen=True)
class Point:
    t: float
    v: float


def extrapolated_rate(points: Sequence[Point], range_start: float, range_end: float) -> float:
    """Prometheus 2.42 ``rate()`` for one counter series over ``[range_start, range_end]``."""
    inside = [p for p in points if range_start <= p.t <= range_end]
    if len(inside) < 2:
        return math.nan  # Prometheus drops the series; the caller treats it as absent
    result = inside[-1].v - inside[0].v
    prev = inside[0].v
    for p in inside[1:]:  # counter resets add the value before the reset
        if p.v < prev:
            result += prev
        prev = p.v
    duration_to_start = inside[0].t - range_start
    duration_to_end = range_end - inside[-1].t
    sampled_interval = inside[-1].t - inside[0].t
    average_between = sampled_interval / (len(inside) - 1)
    if result > 0 and inside[0].v >= 0:
        duration_to_zero = sampled_interval * (inside[0].v / result)
        duration_to_start = min(duration_to_start, duration_to_zero)
    threshold = average_between * 1.1
    extrapolate_to = sampled_interval
    extrapolate_to += duration_to_start if duration_to_start < threshold else average_between / 2
    extrapolate_to += duration_to_end if duration_to_end < threshold else average_between / 2
    factor = extrapolate_to / sampled_interval
    factor /= range_end - range_start  # isRate: per second over the range
    return result * factor


def bucket_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Prometheus 2.42 ``bucketQuantile``: ``buckets`` are ``(upper_bound, cumulative)``."""
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(buckets)
    if not ordered or not math.isinf(ordered[-1][0]):
        return math.nan
    coalesced: list[list[float]] = []  # merge equal bounds (coalesceBuckets)
    for bound, count in ordered:
        if coalesced and coalesced[-1][0] == bound:
            coalesced[-1][1] += count
        else:
            coalesced.append([bound, count])
    maximum = -math.inf  # ensureMonotonic
    for bucket in coalesced:
        if bucket[1] > maximum:
            maximum = bucket[1]
        elif bucket[1] < maximum:
            bucket[1] = maximum
    if len(coalesced) < 2:
        return math.nan
    observations = coalesced[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = next((i for i in range(len(coalesced) - 1) if coalesced[i][1] >= rank), len(coalesced) - 1)
    if b == len(coalesced) - 1:
        return coalesced[-2][0]
    if b == 0 and coalesced[0][0] <= 0:
        return coalesced[0][0]
    bucket_start = 0.0
    bucket_end = coalesced[b][0]
    count = coalesced[b][1]
    if b > 0:
        bucket_start = coalesced[b - 1][0]
        count -= coalesced[b - 1][1]
        rank -= coalesced[b - 1][1]
    return bucket_start + (bucket_end - bucket_start) * (rank / count)


def expected_quantile(
    q: float,
    bounds: Sequence[float],
    history: Sequence[tuple[float, Sequence[float], float]],
    at: float,
    window_seconds: float,
) -> float:
    """``histogram_quantile(q, rate(bucket[w]))`` at ``at`` for one series' history.

    ``history`` is ``[(t, cumulative counts per finite bound, total), ...]``.
    """
    per_bucket: list[tuple[float, float]] = []
    for index, bound in enumerate([*bounds, math.inf]):
        points = [
            Point(t, counts[index] if index < len(bounds) else total)
            for t, counts, total in history
        ]
        per_bucket.append((bound, extrapolated_rate(points, at - window_seconds, at)))
    return bucket_quantile(q, per_bucket)
