"""The engine skips quiet routes whose inputs have not changed, and decides a route again
the moment anything it depends on changes: its latency, its status, its spec or its origin.

The engine runs unchanged; only its outside parts are small in-memory stand-ins (a unit
test: the same engine runs against the real API server in tests/integration)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from timeout_budget.engine import CycleReport, Engine, RouteSnapshot
from timeout_budget.model.observation import LatencyObservation
from timeout_budget.model.spec import RouteKey, TimeoutBudgetSpec, route_key
from timeout_budget.report.metrics import OperatorMetrics

pytestmark = pytest.mark.unit

NS = "shop"
SPEC: dict[str, Any] = {
    "route": {"host": "api.example.com"},
    "budget": {"timeoutSeconds": 120},
    "latency": {"metric": "http_request_duration_seconds", "selector": {"route": "api"}},
    "origin": {
        "deploymentName": "api",
        "minReplicas": 1,
        "maxReplicas": 4,
        "scaleUpCooldownSeconds": 60,
        "scaleDownStabilizationSeconds": 120,
    },
}


def spec_of(name: str) -> dict[str, Any]:
    spec = copy.deepcopy(SPEC)
    spec["origin"]["deploymentName"] = name
    return spec


class World:
    """One Deployment per route, statuses written back as the watch would bring them."""

    def __init__(self, names: list[str]) -> None:
        self.replicas = dict.fromkeys(names, 1)
        self.status: dict[str, dict[str, Any]] = {n: {} for n in names}
        self.p95: dict[RouteKey, float] = {route_key(NS, n): 10.0 for n in names}
        self.generation = dict.fromkeys(names, 1)
        self.patches = 0
        self.now = 1_800_000_000.0

    # the Kubernetes seam
    async def list_deployments(self, namespace: str) -> list[dict[str, Any]]:
        return [
            {
                "metadata": {"name": n, "namespace": NS, "annotations": {}},
                "spec": {"replicas": r},
                "status": {"readyReplicas": r},
            }
            for n, r in self.replicas.items()
        ]

    async def list_hpas(self, namespace: str) -> list[dict[str, Any]]:
        return []

    async def list_services(self, namespace: str) -> list[dict[str, Any]]:
        return []

    async def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        self.replicas[name] = replicas

    async def patch_deployment_metadata(self, *args: Any) -> None:
        return None

    async def patch_budget_status(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        self.patches += 1
        merged = self.status[name]
        for key, value in body.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = copy.deepcopy(value)

    # the latency source
    async def observe(
        self, routes: Mapping[RouteKey, TimeoutBudgetSpec], at: float | None = None
    ) -> Mapping[RouteKey, LatencyObservation]:
        return {key: LatencyObservation.value(self.p95[key], 6000.0) for key in routes}

    def snapshots(self) -> list[RouteSnapshot]:
        return [
            RouteSnapshot(NS, n, f"uid-{n}", self.generation[n], spec_of(n), copy.deepcopy(s))
            for n, s in self.status.items()
        ]


async def _no_event(*_: Any) -> None:
    return None


def engine_for(world: World) -> Engine:
    return Engine(
        kube=world,  # type: ignore[arg-type]
        latency=world,
        post_event=_no_event,
        clock=lambda: world.now,
        metrics=OperatorMetrics(registry=CollectorRegistry()),
    )


def cycle(engine: Engine, world: World) -> CycleReport:
    world.now += 15
    return asyncio.run(engine.evaluate(world.snapshots()))


def settle(engine: Engine, world: World) -> CycleReport:
    """Cycles until the recovery windows are older than the spec's longest duration."""
    for _ in range(12):
        report = cycle(engine, world)
    return report


def test_quiet_routes_are_skipped_once_time_cannot_change_them() -> None:
    world = World(["a", "b", "c"])
    engine = engine_for(world)
    first = cycle(engine, world)
    assert first.unchanged == 0
    assert first.status_patches == 3
    report = settle(engine, world)
    assert report.unchanged == 3
    assert report.status_patches == 0
    assert report.states == {"Healthy": 3}


def test_a_route_whose_latency_rises_is_decided_and_scaled_in_that_cycle() -> None:
    world = World(["a", "b"])
    engine = engine_for(world)
    settle(engine, world)
    world.p95[route_key(NS, "a")] = 110.0
    report = cycle(engine, world)
    assert report.unchanged == 1
    assert report.actions_applied == 1
    assert world.replicas["a"] > 1
    assert world.replicas["b"] == 1
    assert world.status["a"]["state"] == "AtRisk"


def test_noise_within_the_shown_band_stays_skipped() -> None:
    world = World(["a"])
    engine = engine_for(world)
    settle(engine, world)
    world.p95[route_key(NS, "a")] = 10.5  # 5 % off the 10 s shown
    assert cycle(engine, world).unchanged == 1


def test_an_edited_status_a_new_generation_or_a_moved_origin_is_decided_again() -> None:
    world = World(["a", "b", "c"])
    engine = engine_for(world)
    settle(engine, world)
    world.status["a"]["state"] = "Breaching"  # someone edited the status by hand
    world.generation["b"] = 2  # a spec change
    world.replicas["c"] = 3  # someone scaled the origin
    report = cycle(engine, world)
    assert report.unchanged == 0
    assert world.status["a"]["state"] == "Healthy"  # put right
    # Decided once more with the status as patched, then quiet again.
    assert cycle(engine, world).unchanged == 0
    assert cycle(engine, world).unchanged == 3


def test_the_metric_follows_every_reading_while_the_status_holds_still() -> None:
    world = World(["a"])
    engine = engine_for(world)
    cycle(engine, world)  # decided (not quiet yet)
    world.p95[route_key(NS, "a")] = 13.0
    cycle(engine, world)
    assert world.status["a"]["p95Seconds"] == 10.0
    assert p95_metric(engine, "a") == 13.0
    settle(engine, world)
    world.p95[route_key(NS, "a")] = 10.5
    assert cycle(engine, world).unchanged == 1  # the quiet path
    assert world.status["a"]["p95Seconds"] == 10.0
    assert p95_metric(engine, "a") == 10.5
    assert engine.metrics.registry.get_sample_value(
        "timeout_budget_route_budget_ratio", {"namespace": NS, "name": "a"}
    ) == pytest.approx(10.5 / 120)


def p95_metric(engine: Engine, name: str) -> float | None:
    return engine.metrics.registry.get_sample_value(
        "timeout_budget_route_p95_seconds", {"namespace": NS, "name": name}
    )
