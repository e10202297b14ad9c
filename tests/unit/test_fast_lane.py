"""The fast lane: routes near their line are read and decided between full cycles; the
quiet ones wait for the full cycle; the loop never runs both at once."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from tests.support.engine_world import NS, StillEdge, World, engine_for
from tests.support.loop_doubles import Routes, Stopped
from timeout_budget import loop
from timeout_budget.decide.lanes import near_line
from timeout_budget.model.edge_view import Window
from timeout_budget.model.errors import SettingsError
from timeout_budget.model.observation import LatencyObservation
from timeout_budget.model.spec import RouteKey, TimeoutBudgetSpec, parse_timeout_budget, route_key
from timeout_budget.settings import OperatorSettings

pytestmark = pytest.mark.unit

BASE_ENV = {"TBO_PROMETHEUS_URL": "http://p:9090"}

SPEC = parse_timeout_budget(
    {
        "route": {"host": "a.example.com"},
        "budget": {"timeoutSeconds": 100, "atRiskRatio": 0.8, "recoverRatio": 0.6},
        "latency": {"metric": "m"},
        "origin": {"deploymentName": "a"},
    }
)


@pytest.mark.parametrize(
    ("latency", "near"),
    [
        (LatencyObservation.value(59.9), False),  # under the 60 s recover line
        (LatencyObservation.value(60.0), True),  # on it
        (LatencyObservation.value(70.0), True),  # between the lines
        (LatencyObservation.value(130.0), True),  # breaching
        (LatencyObservation.partial(85.0, "store b down"), True),  # may still add capacity
        (LatencyObservation.partial(None, "store b down"), False),
        (LatencyObservation.no_data(), False),
        (LatencyObservation.unavailable("down"), False),
        (LatencyObservation.value(float("nan")), False),
        (None, False),
    ],
)
def test_near_line(latency: LatencyObservation | None, near: bool) -> None:
    assert near_line(SPEC, latency) is near


class CountingWorld(World):
    """Records which routes each read asked for."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(names)
        self.asked: list[set[str]] = []

    async def observe(
        self, routes: Mapping[RouteKey, TimeoutBudgetSpec], at: float | None = None
    ) -> Mapping[RouteKey, LatencyObservation]:
        self.asked.append({k.split("/")[1] for k in routes})
        return await super().observe(routes, at)


def test_a_lane_pass_reads_and_decides_only_its_routes() -> None:
    world = CountingWorld(["quiet", "near", "gone-up"])
    world.p95[route_key(NS, "near")] = 80.0  # between the 72 s and 96 s lines
    world.p95[route_key(NS, "gone-up")] = 75.0
    engine = engine_for(world)
    world.now += 15
    asyncio.run(engine.evaluate(world.snapshots()))
    assert world.asked[-1] == {"quiet", "near", "gone-up"}
    assert engine.near == {route_key(NS, "near"), route_key(NS, "gone-up")}
    assert world.replicas == {"quiet": 1, "near": 1, "gone-up": 1}

    # Between cycles "gone-up" crosses its at-risk line, "quiet" too (unseen until the cycle).
    world.p95[route_key(NS, "gone-up")] = 110.0
    world.p95[route_key(NS, "quiet")] = 110.0
    quiet_status = dict(world.status["quiet"])
    world.now += 5
    report = asyncio.run(engine.evaluate(world.snapshots(), lane=frozenset(engine.near)))
    assert world.asked[-1] == {"near", "gone-up"}
    assert report.routes == 2
    assert world.replicas["gone-up"] > 1  # scaled in the lane, not a cycle later
    assert world.replicas["quiet"] == 1
    assert world.status["quiet"] == quiet_status  # not read, not reported

    # The next full cycle sees "quiet" and takes it into the lane; a route that fell
    # back under its recover line leaves it.
    world.p95[route_key(NS, "near")] = 20.0
    world.now += 10
    asyncio.run(engine.evaluate(world.snapshots()))
    assert engine.near == {route_key(NS, "gone-up"), route_key(NS, "quiet")}
    assert world.replicas["quiet"] > 1


def test_a_lane_pass_compares_the_edge_windows_of_its_routes_before_deciding_them() -> None:
    """A new window of Cloudflare's view is shown with Prometheus' P95 over it in one
    write, whichever pass first shows it: the lane asks about its own routes' windows."""
    world = CountingWorld(["quiet", "near"])
    world.p95[route_key(NS, "near")] = 80.0
    engine = engine_for(world)
    world.now += 15
    asyncio.run(engine.evaluate(world.snapshots()))
    window = Window(world.now - 300, world.now)
    edge = StillEdge(world, due={route_key(NS, "near"): window, route_key(NS, "quiet"): window})
    engine.edge, engine.edge_latency = edge, world
    world.asked.clear()

    world.now += 5
    asyncio.run(engine.evaluate(world.snapshots(), lane=frozenset(engine.near)))

    assert world.asked == [{"near"}, {"near"}]  # the window first, then the lane's reading
    assert edge.told == {route_key(NS, "near"): (window, 80.0)}


def test_a_deleted_route_leaves_the_lane_at_the_next_cycle() -> None:
    world = World(["a", "b"])
    world.p95[route_key(NS, "a")] = 90.0
    engine = engine_for(world)
    world.now += 15
    asyncio.run(engine.evaluate(world.snapshots()))
    assert engine.near == {route_key(NS, "a")}
    del world.status["a"]
    world.now += 15
    asyncio.run(engine.evaluate(world.snapshots()))
    assert engine.near == set()


def test_lane_passes_keep_the_routes_gauges_of_the_others() -> None:
    world = World(["a", "b"])
    world.p95[route_key(NS, "a")] = 90.0
    engine = engine_for(world)
    world.now += 15
    asyncio.run(engine.evaluate(world.snapshots()))
    tracked = engine.metrics.tracked_routes()
    assert tracked == {(NS, "a"), (NS, "b")}
    world.now += 5
    asyncio.run(engine.evaluate(world.snapshots(), lane=frozenset(engine.near)))
    assert engine.metrics.tracked_routes() == tracked


class Recorder:
    """Stands for the engine in the loop: records full cycles and lane passes."""

    def __init__(self, near_after: int) -> None:
        self.calls: list[tuple[float, str]] = []
        self.near: set[Any] = set()
        self.near_after = near_after
        self.metrics = engine_for(World([])).metrics
        self.origins = None
        self.t0 = 0.0
        self.passes = asyncio.Lock()
        self.closing = False
        self.pass_seconds = 0.0
        self._refreshing: list[Any] = []  # the engine's coverage refreshes (none here)

    async def evaluate(self, snapshots: Any, lane: Any = None) -> Any:
        from timeout_budget.cycle import CycleReport

        now = asyncio.get_running_loop().time() - self.t0
        self.calls.append((round(now, 1), "lane" if lane is not None else "full"))
        if len(self.calls) >= self.near_after:
            self.near = {"x"}
        await asyncio.sleep(self.pass_seconds)
        self.calls.append((round(asyncio.get_running_loop().time() - self.t0, 1), "end"))
        return CycleReport()


def test_the_loop_runs_lane_passes_between_cycles_never_at_once() -> None:
    async def scenario() -> list[tuple[float, str]]:
        engine = Recorder(near_after=1)
        engine.t0 = asyncio.get_running_loop().time()
        stopped = Stopped()
        task = asyncio.create_task(
            loop.run(engine, Routes(), asyncio.Event(), stopped, 3.0, fast_interval=1.0)  # type: ignore[arg-type]
        )
        await asyncio.sleep(6.5)
        stopped.event.set()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return engine.calls

    calls = [c for c in asyncio.run(scenario()) if c[1] != "end"]
    kinds = [k for _, k in calls]
    assert kinds[0] == "full"
    assert kinds.count("full") == 3  # at 0, 3 and 6 s
    assert "lane" in kinds
    fulls = [t for t, k in calls if k == "full"]
    assert fulls == pytest.approx([0.0, 3.0, 6.0], abs=0.5)
    lanes = [t for t, k in calls if k == "lane"]
    assert lanes == pytest.approx([1.0, 2.0, 4.0, 5.0], abs=0.5)


@pytest.mark.parametrize(
    ("env", "seconds"),
    [
        ({}, 5.0),
        ({"TBO_EVALUATION_INTERVAL_SECONDS": "1"}, 0.0),  # a sandbox's 1 s cycle: off
        ({"TBO_FAST_LANE_SECONDS": "0"}, 0.0),
        ({"TBO_FAST_LANE_SECONDS": "2.5"}, 2.5),
    ],
)
def test_fast_lane_setting(env: dict[str, str], seconds: float) -> None:
    assert OperatorSettings.from_env({**BASE_ENV, **env}).fast_lane_seconds == seconds


@pytest.mark.parametrize("value", ["0.5", "15", "20", "x"])
def test_fast_lane_setting_refused(value: str) -> None:
    env = {**BASE_ENV, "TBO_FAST_LANE_SECONDS": value}
    with pytest.raises(SettingsError, match="TBO_FAST_LANE_SECONDS"):
        OperatorSettings.from_env(env)


def test_shutdown_waits_for_the_pass_in_flight_and_starts_no_other() -> None:
    """Clients are closed and Leases released only after the pass in flight ended."""
    from timeout_budget.cycle.engine import Engine

    async def scenario() -> tuple[list[tuple[float, str]], float]:
        engine = Recorder(near_after=1)
        engine.pass_seconds = 1.0
        engine.t0 = asyncio.get_running_loop().time()
        stopped = Stopped()
        task = asyncio.create_task(
            loop.run(engine, Routes(), asyncio.Event(), stopped, 3.0, fast_interval=1.0)  # type: ignore[arg-type]
        )
        await asyncio.sleep(0.3)  # the first cycle is running
        await Engine.quiesce(engine, timeout=5)  # type: ignore[arg-type]
        quiet_at = asyncio.get_running_loop().time() - engine.t0
        await asyncio.wait_for(task, 5)  # the loop ends by itself: no pass after it
        return engine.calls, quiet_at

    calls, quiet_at = asyncio.run(scenario())
    assert [k for _, k in calls] == ["full", "end"]
    assert quiet_at >= calls[-1][0]
