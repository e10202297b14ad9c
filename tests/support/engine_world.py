"""A small in-memory world for engine unit tests: one Deployment per route, the latency
each route reads, statuses written back as the watch would bring them.

The engine runs unchanged against it; the same engine runs against the real API server in
tests/integration."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Collection, Mapping
from typing import Any

from prometheus_client import CollectorRegistry

from tests.support import merge_patch
from timeout_budget.clients.kube import Fields
from timeout_budget.cycle import CycleReport, Engine, RouteSnapshot
from timeout_budget.cycle.ports import AnswersAtOnce
from timeout_budget.model.edge_view import Window
from timeout_budget.model.observation import LatencyObservation
from timeout_budget.model.spec import RouteKey, TimeoutBudgetSpec, route_key
from timeout_budget.report.metrics import OperatorMetrics

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


class World(AnswersAtOnce):
    """One Deployment per route, statuses written back as the watch would bring them."""

    def __init__(self, names: list[str]) -> None:
        self.replicas = dict.fromkeys(names, 1)
        self.status: dict[str, dict[str, Any]] = {n: {} for n in names}
        self.p95: dict[RouteKey, float] = {route_key(NS, n): 10.0 for n in names}
        self.generation = dict.fromkeys(names, 1)
        self.patches = 0
        self.now = 1_800_000_000.0

    # the Kubernetes seam
    async def list_deployments(
        self, namespace: str, fields: Fields | None = None
    ) -> list[dict[str, Any]]:
        return [
            {
                "metadata": {"name": n, "namespace": NS, "annotations": {}},
                "spec": {"replicas": r},
                "status": {"readyReplicas": r},
            }
            for n, r in self.replicas.items()
        ]

    async def list_hpas(self, namespace: str, fields: Fields | None = None) -> list[dict[str, Any]]:
        return []

    async def list_services(
        self, namespace: str, fields: Fields | None = None
    ) -> list[dict[str, Any]]:
        return []

    async def list_ingresses(
        self, namespace: str, fields: Fields | None = None
    ) -> list[dict[str, Any]]:
        return []

    async def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        self.replicas[name] = replicas

    async def patch_deployment_metadata(self, *args: Any) -> None:
        return None

    async def patch_budget_status(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        self.patches += 1
        self.status[name] = merge_patch.apply(self.status[name], copy.deepcopy(body))

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


class EdgeWorld(World):
    """The world's routes sync through CloudflareZone ``shop/zone``."""

    def snapshots(self) -> list[RouteSnapshot]:
        snaps = super().snapshots()
        for snap in snaps:
            snap.spec["edge"] = {"zoneRef": {"name": "zone"}}  # type: ignore[index]
        return snaps


class StillEdge:
    """Stands where the ZoneRegistry stands: nothing to observe or change. ``waiting``
    routes await the flush (say, they failed at the last one); ``due``: the windows of
    Cloudflare's view to compare, each route's until Prometheus answered it. Records what
    the statuses were when the flush came, and the answers."""

    def __init__(
        self,
        world: World,
        *,
        waiting: Collection[RouteKey] = (),
        due: Mapping[RouteKey, Window] | None = None,
    ) -> None:
        self.world = world
        self.waiting = waiting
        self.due = dict(due or {})
        self.told: dict[RouteKey, tuple[Window, float | None]] = {}
        self.at_flush: dict[str, Any] = {}

    def observe(self, namespace: str, key: RouteKey, spec: TimeoutBudgetSpec) -> None:
        return None

    def rerouted(self, namespace: str, key: RouteKey, spec: TimeoutBudgetSpec) -> frozenset[Any]:
        return frozenset()

    def conditions(self, namespace: str, key: RouteKey, spec: TimeoutBudgetSpec) -> tuple[()]:
        return ()

    async def apply(self, *args: Any) -> None:
        return None

    def edge_view(self, namespace: str, key: RouteKey, spec: TimeoutBudgetSpec) -> None:
        return None

    def unread(self, namespace: str, key: RouteKey, spec: TimeoutBudgetSpec) -> bool:
        return False

    def comparisons_due(self) -> dict[RouteKey, Window]:
        return {k: w for k, w in self.due.items() if k not in self.told}

    def compared(self, answers: Mapping[RouteKey, tuple[Window, float | None]]) -> None:
        self.told.update(answers)

    def awaits_flush(self, key: RouteKey) -> bool:
        return key in self.waiting

    async def flush(self) -> Mapping[RouteKey, str]:
        self.at_flush = copy.deepcopy(self.world.status)
        return {}


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
