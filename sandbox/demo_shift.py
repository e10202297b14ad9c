"""The demo's weighted route: its load split by the weights on its HTTPRoute, and its steps.

A route with ``reroute.httpRoute`` (``demo_scenario.REPORTS``) is served by two pools at
once: the operator writes the share of the HTTPRoute rule's traffic that goes to the
long-running backend (``backendRefs[].weight``), and the demo reads that share from the
API every second, as it reads the READY pods. The synthetic origin then serves the route
as two models with the same ``route`` label and their own ``pool`` label: the main pool
gets ``rps x (1 - share)`` on its ready replicas, the long-running pool ``rps x share`` on
its own, each with its own latency. The operator's query sums the two histograms by
``route``, so the P95 it reads is that of every request of the route, whichever pool
served it: the mixture of the two pools' distributions, weighted by their request rates,
as Prometheus would see a real origin's pods. ``mixture_p95`` computes the same mixture's
true P95 (the grey line of the plot).

Then, from the recorded samples, the steps the share took (``steps``) and a line for the
summary. Pure, but for ``set_split`` which sets the origin's models.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from sandbox import demo_scenario as sc
from sandbox.demo_timeline import RouteSample
from sandbox.origin_exporter import OriginExporter
from timeout_budget.model import ownership
from timeout_budget.model.httproute import rules_of, share

LONG_KEY_SUFFIX = "@long-running"
"""The origin model of a route's long-running pool: ``<route>@long-running``."""
_STD_NORMAL = NormalDist()
_Z95 = _STD_NORMAL.inv_cdf(0.95)


def long_key(route: str) -> str:
    return route + LONG_KEY_SUFFIX


def long_share(httproutes: Mapping[str, Mapping[str, Any]], route: sc.Route) -> int | None:
    """The long-running backend's share of the route's HTTPRoute's first rule (the demo's
    has one), in whole percent: 0 while it is not there; ``None`` for a route without."""
    if route.http_route is None or route.long_backend is None:
        return None
    httproute = httproutes.get(route.http_route)
    if httproute is None:
        return 0
    rules = rules_of(httproute.get("spec", {}).get("rules"))
    if not rules:
        return 0
    refs = rules_of(rules[0].get("backendRefs"))
    return share(refs, *route.long_backend) or 0


def set_split(
    origin: OriginExporter, route: sc.Route, rps: float, percent: int
) -> dict[str, sc.Pool]:
    """Set the origin's two models of ``route`` for ``rps`` with ``percent`` on the
    long-running pool; returns which pool each model's replicas are read from."""
    main, long_running = route.pools
    f = percent / 100
    pools = {route.name: main, long_key(route.name): long_running}
    for (key, pool), rate in zip(pools.items(), (rps * (1 - f), rps * f), strict=True):
        origin.set_route(
            key,
            p95=pool.base_p95 or route.base_p95,
            rps=rate,
            host=route.host,
            path=route.path,
            capacity_rps_per_replica=pool.capacity_rps_per_replica,
            route_label=route.name,
            pool=pool.name,
        )
    return pools


def mixture_p95(parts: Sequence[tuple[float, float]], sigma: float = 0.5) -> float:
    """The P95 of requests drawn from log-normal parts ``(rate, p95)`` in proportion to
    their rates (the origin's spread ``sigma``); bisection on the mixture's CDF."""
    total = sum(rate for rate, _ in parts)
    live = [(rate / total, p95) for rate, p95 in parts if rate > 0] if total > 0 else []
    if not live:
        return parts[0][1]

    def cdf(x: float) -> float:
        return sum(
            w * _STD_NORMAL.cdf((math.log(x / p95) + _Z95 * sigma) / sigma) for w, p95 in live
        )

    low, high = min(p for _, p in live) / 10, max(p for _, p in live) * 10
    for _ in range(60):
        mid = math.sqrt(low * high)
        low, high = (mid, high) if cdf(mid) < 0.95 else (low, mid)
    return math.sqrt(low * high)


@dataclass(frozen=True)
class Step:
    """The share on the long-running backend changed to ``percent`` at ``t``."""

    t: float
    percent: int


def steps(samples: Sequence[RouteSample]) -> list[Step]:
    """Every change of the share the demo read, in order (from 0 % at the start)."""
    found: list[Step] = []
    last = 0
    for s in samples:
        if s.long_share is not None and s.long_share != last:
            found.append(Step(s.t, s.long_share))
            last = s.long_share
    return found


def rules_restored(
    httproute: Mapping[str, Any] | None, original_rules: Sequence[Mapping[str, Any]]
) -> list[str]:
    """What is not as the manifest has it: the rules field by field, and the operator's
    record annotation; empty when the HTTPRoute is back exactly."""
    if httproute is None:
        return ["the HTTPRoute is gone"]
    problems = []
    rules = httproute.get("spec", {}).get("rules")
    if rules != list(original_rules):
        problems.append(f"rules are {rules}, not the manifest's {list(original_rules)}")
    notes = httproute.get("metadata", {}).get("annotations") or {}
    if ownership.REROUTE_WEIGHTS in notes:
        problems.append(f"it still carries {ownership.REROUTE_WEIGHTS}")
    return problems


def describe(route: str, samples: Sequence[RouteSample], restored: list[str] | None) -> str:
    """``reports: shifted 20% at t=12s → 40% at t=20s; walked back → 20% at t=60s → 0%
    at t=66s; the rule restored exactly``."""
    found = steps(samples)
    if not found:
        return f"{route}: the weights were never shifted"
    peak = max(range(len(found)), key=lambda i: found[i].percent)
    up = " → ".join(f"{s.percent}% at t={s.t:.0f}s" for s in found[: peak + 1])
    text = f"{route}: HTTPRoute weights shifted {up}"
    if peak + 1 < len(found):
        down = " → ".join(f"{s.percent}% at t={s.t:.0f}s" for s in found[peak + 1 :])
        text += f"; walked back → {down}"
    if restored is not None:
        text += (
            "; at the end the rule is the manifest's exactly, without the operator's record"
            if not restored
            else f"; NOT restored: {'; '.join(restored)}"
        )
    return text
