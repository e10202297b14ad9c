"""The engine skips quiet routes whose inputs have not changed, and decides a route again
the moment anything it depends on changes: its latency, its status, its spec or its origin.

The engine runs unchanged; only its outside parts are small in-memory stand-ins (a unit
test: the same engine runs against the real API server in tests/integration)."""

from __future__ import annotations

import pytest

from tests.support.engine_world import NS, World, cycle, engine_for, settle
from timeout_budget.cycle import Engine
from timeout_budget.model.spec import route_key

pytestmark = pytest.mark.unit


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


def test_a_route_inside_a_window_is_skipped_until_the_window_ends() -> None:
    world = World(["a"])  # healthy at its floor: a window running changes nothing for it
    engine = engine_for(world)
    key = route_key(NS, "a")
    first = cycle(engine, world)  # the recovery starts now: memory written
    assert first.unchanged == 0
    assert world.status["a"]["memory"]["recoveryStartedAt"]
    cycle(engine, world)  # decided once with the status as patched
    inside = cycle(engine, world)
    assert inside.unchanged == 1  # skipped although its recovery window is still open
    known = engine.quiet.get(key)
    assert known is not None
    until = known.until
    assert world.now < until < world.now + 3600
    world.now = until - 15 - 0.5  # the next cycle runs half a second before the end
    assert cycle(engine, world).unchanged == 1
    assert cycle(engine, world).unchanged == 0  # the window ended: decided again
    assert world.status["a"]["state"] == "Healthy"
