"""A cycle decides each batch of routes as soon as Prometheus answers it, while the other
batches are still out; a route no answer covered holds and says why."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from tests.support.engine_world import NS, EdgeWorld, StillEdge, World, engine_for
from timeout_budget import heap
from timeout_budget.model.observation import LatencyObservation
from timeout_budget.model.spec import RouteKey, TimeoutBudgetSpec, route_key

pytestmark = pytest.mark.unit


class PartedWorld(World):
    """Answers every route but ``late`` first; ``late`` only after a look at the world."""

    def __init__(self, names: list[str], late: str, *, leave_out: bool = False) -> None:
        super().__init__(names)
        self.late = route_key(NS, late)
        self.leave_out = leave_out
        self.at_late_answer: dict[str, Any] = {}

    async def observe_parts(
        self, routes: Mapping[RouteKey, TimeoutBudgetSpec], at: float | None = None
    ) -> AsyncIterator[dict[RouteKey, LatencyObservation]]:
        yield {k: LatencyObservation.value(self.p95[k], 6000.0) for k in routes if k != self.late}
        await asyncio.sleep(0)
        self.at_late_answer = {
            "status": copy.deepcopy(self.status),
            "replicas": dict(self.replicas),
        }
        if not self.leave_out:
            yield {self.late: LatencyObservation.value(self.p95[self.late], 6000.0)}


def run_cycle(world: PartedWorld) -> Any:
    engine = engine_for(world)
    world.now += 15
    return asyncio.run(engine.evaluate(world.snapshots()))


def test_the_first_answers_are_acted_on_and_reported_before_the_last_one_arrives() -> None:
    world = PartedWorld(["hot", "calm", "late"], late="late")
    world.p95[route_key(NS, "hot")] = 110.0  # above the 96 s at-risk line
    report = run_cycle(world)
    seen = world.at_late_answer
    assert seen["replicas"]["hot"] > 1  # scaled before the last answer came
    assert seen["status"]["hot"]["state"] == "AtRisk"
    assert seen["status"]["calm"]["state"] == "Healthy"
    assert seen["status"]["late"] == {}  # not decided before its answer
    assert world.status["late"]["state"] == "Healthy"
    assert report.status_patches == 3


def test_a_route_no_answer_covered_holds_and_says_why() -> None:
    world = PartedWorld(["a", "late"], late="late", leave_out=True)
    world.replicas["late"] = 3  # scaled up earlier: must not be scaled down on no data
    run_cycle(world)
    assert world.status["a"]["state"] == "Healthy"
    assert world.status["late"]["state"] == "NoData"
    assert "not observed this cycle" in world.status["late"]["message"]
    assert world.replicas["late"] == 3


def test_only_routes_whose_edge_awaits_the_flush_are_reported_after_it() -> None:
    world = EdgeWorld(["steady", "waiting"])
    edge = StillEdge(world, waiting={route_key(NS, "waiting")})
    engine = engine_for(world)
    engine.edge = edge
    world.now += 15
    report = asyncio.run(engine.evaluate(world.snapshots()))
    assert edge.at_flush["steady"]["state"] == "Healthy"  # reported before the flush
    assert edge.at_flush["waiting"] == {}  # waited for it
    assert world.status["waiting"]["state"] == "Healthy"
    assert report.status_patches == 2


class RefreshingWorld(World):
    """Records when the engine asks for the coverage refresh; each refresh runs until its
    own gate is opened."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(names)
        self.log: list[str] = []
        self.gates: list[asyncio.Event] = []

    async def observe_parts(
        self, routes: Mapping[RouteKey, TimeoutBudgetSpec], at: float | None = None
    ) -> AsyncIterator[dict[RouteKey, LatencyObservation]]:
        self.log.append(f"observe {len(routes)}")
        yield {k: LatencyObservation.value(self.p95[k], 6000.0) for k in routes}

    async def refresh_coverage(self) -> int:
        self.log.append("refresh")
        self.gates.append(asyncio.Event())
        await self.gates[-1].wait()
        self.log.append("refreshed")
        return 1


def test_coverage_is_refreshed_after_each_pass_and_the_next_cycle_waits_for_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = RefreshingWorld(["a", "b"])
    engine = engine_for(world)
    monkeypatch.setattr(heap, "give_back", lambda: bool(world.log.append("give back")))

    async def scenario() -> None:
        report = await engine.evaluate(world.snapshots())
        assert report.status_patches == 2  # reported before the refresh was asked for
        assert world.log == ["observe 2"]
        await asyncio.sleep(0)
        assert world.log == ["observe 2", "refresh"]  # between passes
        await engine.evaluate(world.snapshots(), lane=frozenset({route_key(NS, "a")}))
        await asyncio.sleep(0)
        # A lane pass does not wait for the refresh; it starts its own for what it read.
        assert world.log == ["observe 2", "refresh", "observe 1", "refresh"]
        next_cycle = asyncio.ensure_future(engine.evaluate(world.snapshots()))
        await asyncio.sleep(0.05)
        assert world.log[-1] == "refresh"  # the next cycle waits for both
        world.gates[0].set()
        await asyncio.sleep(0.05)
        assert world.log[-1] == "give back"  # its answers handed back to the system
        assert not next_cycle.done()
        world.gates[1].set()
        await next_cycle
        await asyncio.sleep(0)
        assert world.log[4:] == ["refreshed", "give back"] * 2 + ["observe 2", "refresh"]
        await engine.quiesce(1)  # shutdown: the refresh in flight is cancelled
        await asyncio.sleep(0)
        (running,) = engine._refreshing
        assert running.cancelled()

    asyncio.run(scenario())


def test_the_fast_lanes_own_source_is_refreshed_after_its_passes() -> None:
    world = RefreshingWorld(["a", "b"])
    lane_source = RefreshingWorld(["a", "b"])
    engine = engine_for(world)
    engine.fast_latency = lane_source

    async def scenario() -> None:
        await engine.evaluate(world.snapshots(), lane=frozenset({route_key(NS, "a")}))
        await asyncio.sleep(0)
        assert lane_source.log == ["observe 1", "refresh"]
        assert world.log == []
        lane_source.gates[0].set()
        await asyncio.sleep(0)
        assert lane_source.log[-1] == "refreshed"

    asyncio.run(scenario())
