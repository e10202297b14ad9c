"""Builders shared by the ladder, diff, conditions and chain tests: a route spec, what the
observe step would have found, the edge hop status shows, and a clock that only moves when the
test says so.

The default route: a 120 s budget (act at 96 s, release below 72 s), origin 2..6 replicas
in steps of 2 with a 60 s cooldown and a 300 s stabilization, a Service reroute after 3
evaluations and a 300 s recovery, and an Enterprise-like zone at 120 s whose read timeout
may be raised.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from timeout_budget.model.actions import RerouteTarget, RerouteVia
from timeout_budget.model.observation import LatencyObservation
from timeout_budget.model.spec import TimeoutBudgetSpec, parse_timeout_budget
from timeout_budget.model.world import (
    EdgeObservation,
    Hpa,
    RouteObservation,
    ScaleObservation,
)

T0 = 1_780_000_000.0
"""An arbitrary, whole-second start of time."""


def ago(seconds: float) -> float:
    """A moment ``seconds`` before ``T0``, for memories."""
    return T0 - seconds


SERVICE = RerouteTarget(RerouteVia.SERVICE, "api")
DNS = RerouteTarget(RerouteVia.DNS_ONLY, "api-direct.example.com")
ZONE = EdgeObservation(zone_timeout_seconds=120, editable=True)
ZONE_HOP: dict[str, Any] = {
    "hop": "cloudflare",
    "object": "CloudflareZone example-com",
    "timeoutSeconds": 120,
    "measures": "idle",
    "source": "zone",
    "verdict": "Ok",
}
"""The default route's edge hop as ``status.chain`` shows it: the zone's 120 s, in time."""

BASE: dict[str, Any] = {
    "route": {"host": "api.example.com", "pathPrefix": "/"},
    "budget": {"timeoutSeconds": 120, "atRiskRatio": 0.8, "recoverRatio": 0.6},
    "latency": {"metric": "http_request_duration_seconds", "selector": {"route": "api"}},
    "origin": {
        "deploymentName": "api",
        "minReplicas": 2,
        "maxReplicas": 6,
        "scaleUpStep": 2,
        "scaleUpCooldownSeconds": 60,
        "scaleDownStabilizationSeconds": 300,
    },
    "reroute": {
        "serviceName": "api",
        "longRunningSelector": {"app": "api-long-running"},
        "afterEvaluations": 3,
        "recoverySeconds": 300,
    },
    "edge": {"zoneRef": {"name": "example-com"}},
}


def make_spec(**sections: Any) -> TimeoutBudgetSpec:
    """The default spec with sections merged in: ``make_spec(origin={"maxReplicas": 4})``;
    a section given as ``None`` is removed, a top-level flag is set (``paused=True``)."""
    body = copy.deepcopy(BASE)
    for name, value in sections.items():
        if value is None:
            body.pop(name, None)
        elif isinstance(value, dict) and isinstance(body.get(name), dict):
            body[name].update(value)
        else:
            body[name] = value
    return parse_timeout_budget(body)


def make_observation(
    p95: float | LatencyObservation | None = 50.0,
    *,
    replicas: int = 2,
    ready: int | None = None,
    hpa: Hpa | None = None,
    baseline: int | None = None,
    rerouted: Iterable[RerouteTarget] = (),
    edge: EdgeObservation | None = ZONE,
    top: float | None = None,
) -> RouteObservation:
    if isinstance(p95, LatencyObservation):
        latency = p95
    elif p95 is None:
        latency = LatencyObservation.no_data()
    else:
        latency = LatencyObservation.value(p95, top_bucket_seconds=top)
    return RouteObservation(
        latency=latency,
        scale=ScaleObservation(
            spec_replicas=replicas,
            ready_replicas=replicas if ready is None else ready,
            hpa=hpa,
            baseline_replicas=baseline,
        ),
        rerouted=frozenset(rerouted),
        edge=edge,
    )


@dataclass
class FakeClock:
    """Time that moves only when the test moves it."""

    now: float = T0

    def tick(self, seconds: float) -> float:
        self.now += seconds
        return self.now
