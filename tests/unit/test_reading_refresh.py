"""A change of the reading alone is written at most once per refresh period; anything a
decision takes from the reading is written at once (``decide.status.reading_only``,
``cycle.report``).

The engine runs unchanged against the in-memory world of tests/support/engine_world."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest

from tests.support.engine_world import NS, World, cycle, engine_for
from timeout_budget.decide import status
from timeout_budget.model.errors import SettingsError
from timeout_budget.model.spec import route_key
from timeout_budget.model.timestamps import rfc3339
from timeout_budget.settings import OperatorSettings

pytestmark = pytest.mark.unit

KEY = route_key(NS, "a")
WOBBLE = [90.0, 108.0, 88.0, 103.0, 86.0, 110.0, 93.0, 106.0]
"""A P95 wobbling about the 96 s at-risk line, never under the 72 s recover line, each
reading more than the shown tolerance (10 %) from the one before."""


def at_its_ladder_end(refresh: float = 60.0) -> tuple[World, Any]:
    """Route ``a`` at risk at max replicas (4), nothing more to do, its status written."""
    world = World(["a"])
    engine = engine_for(world)
    engine.reading_refresh_seconds = refresh
    world.p95[KEY] = 110.0
    for _ in range(8):  # 1 -> 3 -> 4 replicas, cooldowns over
        cycle(engine, world)
    assert world.replicas["a"] == 4
    assert world.status["a"]["conditions"][0]["reason"] == "NothingMoreToDo"
    return world, engine


def test_a_wobbling_reading_at_the_ladders_end_is_written_once_a_minute() -> None:
    world, engine = at_its_ladder_end()
    written: list[float] = []
    held = 0
    for p95 in WOBBLE * 2:  # 16 cycles of 15 s: 240 s
        world.p95[KEY] = p95
        report = cycle(engine, world)
        held += report.readings_held
        if report.status_patches:
            written.append(world.now)
    assert 3 <= len(written) <= 4, written  # every 60 s at most, not every cycle (16)
    assert all(b - a >= 60 for a, b in pairwise(written))
    assert held >= 6  # the other cycles read within the shown tolerance: no change at all
    st = world.status["a"]
    assert st["state"] == "AtRisk"
    assert st["conditions"][0]["reason"] == "NothingMoreToDo"  # never flipped to AtRisk


def test_with_refresh_off_every_change_of_the_reading_is_written() -> None:
    world, engine = at_its_ladder_end(refresh=0)
    patches = 0
    for p95 in WOBBLE:
        world.p95[KEY] = p95
        patches += cycle(engine, world).status_patches
    assert patches == len(WOBBLE)


def test_a_reading_that_changes_a_decision_is_written_at_once() -> None:
    world = World(["a"])
    engine = engine_for(world)
    world.p95[KEY] = 30.0
    cycle(engine, world)
    world.p95[KEY] = 50.0  # same band, moved by more than the shown tolerance: reading only
    report = cycle(engine, world)
    assert report.readings_held == 1
    assert world.status["a"]["p95Seconds"] == 30.0
    world.p95[KEY] = 110.0  # over the at-risk line: scaled, written with the new reading
    report = cycle(engine, world)
    assert report.status_patches == 1
    assert report.readings_held == 0
    assert world.status["a"]["p95Seconds"] == 110.0
    assert world.status["a"]["state"] == "AtRisk"
    assert world.replicas["a"] > 1


def test_data_gone_is_written_at_once() -> None:
    world, engine = at_its_ladder_end()
    world.p95[KEY] = float("nan")
    report = cycle(engine, world)
    assert report.status_patches == 1
    assert world.status["a"]["state"] == "NoData"
    assert "p95Seconds" not in world.status["a"]


def test_a_held_reading_is_written_once_due_even_if_it_stays_put() -> None:
    """Not kept as a quiet route on the old status: the reading shown would stay stale."""
    world = World(["a"])
    engine = engine_for(world)
    world.p95[KEY] = 30.0
    cycle(engine, world)
    world.p95[KEY] = 50.0
    seen = []
    for _ in range(5):
        cycle(engine, world)
        seen.append(world.status["a"]["p95Seconds"])
    assert seen == [30.0, 30.0, 30.0, 50.0, 50.0]


BASE: dict[str, Any] = {
    "state": "AtRisk",
    "p95Seconds": 100.0,
    "ratio": 0.833,
    "message": "P95 100s is 83% of the 120s budget.",
    "memory": {"atRisk": True},
    "conditions": [
        {"type": "Ready", "status": "False", "reason": "NothingMoreToDo", "message": "P95 100s"}
    ],
    "lastEvaluationTime": rfc3339(1_000.0, whole_seconds=True),
}


def moved(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


@pytest.mark.parametrize(
    ("new", "unmoved", "only"),
    [
        pytest.param(
            moved(p95Seconds=90.0, ratio=0.75, message="P95 90s"), BASE, True, id="reading"
        ),
        pytest.param(moved(p95Seconds=90.0, state="Healthy"), BASE, False, id="state-changed-too"),
        pytest.param(
            moved(p95Seconds=90.0, memory={"atRisk": False}), BASE, False, id="memory-changed"
        ),
        pytest.param(
            moved(
                p95Seconds=90.0,
                conditions=[{"type": "Ready", "status": "True", "reason": "AtRisk"}],
            ),
            BASE,
            False,
            id="condition-reason-changed",
        ),
        pytest.param(
            moved(p95Seconds=90.0),
            moved(message="P95 100s. Next scale-up in 15s."),
            False,
            id="would-change-without-the-reading",
        ),
    ],
)
def test_reading_only(new: dict[str, Any], unmoved: dict[str, Any], only: bool) -> None:
    assert status.reading_only(BASE, new, unmoved) is only


def test_refresh_due() -> None:
    assert status.refresh_due(BASE, 1_059.0, 60) is False
    assert status.refresh_due(BASE, 1_060.0, 60) is True
    assert status.refresh_due({}, 1_000.0, 60) is True
    assert status.refresh_due(BASE, 1_000.0, 0) is True


ENV = {"TBO_PROMETHEUS_URL": "http://prometheus:9090"}


@pytest.mark.parametrize(("raw", "seconds"), [(None, 60.0), ("0", 0.0), ("300", 300.0)])
def test_the_setting(raw: str | None, seconds: float) -> None:
    env = ENV if raw is None else {**ENV, "TBO_READING_REFRESH_SECONDS": raw}
    assert OperatorSettings.from_env(env).reading_refresh_seconds == seconds


@pytest.mark.parametrize("raw", ["-1", "3601", "nan", "soon"])
def test_the_setting_refused(raw: str) -> None:
    with pytest.raises(SettingsError, match="TBO_READING_REFRESH_SECONDS"):
        OperatorSettings.from_env({**ENV, "TBO_READING_REFRESH_SECONDS": raw})
