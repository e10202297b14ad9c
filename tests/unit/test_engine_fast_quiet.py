"""The engine's fast quiet check (``QuietRoutes.fast``) changes nothing but the work.

In the operator the index entries and the origin objects are the very same objects from one
cycle to the next until something changes (the kopf index, the watch-fed copies), and the
engine settles most routes by identity. Here the same random story is played twice: on a
world that hands out the same objects while they are unchanged (the fast check applies),
and on one that hands out fresh copies every cycle (it never can, every route goes through
``_evaluate_route``). Every status, replica count and report must be the same in both.
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest

from tests.support.engine_world import NS, World, cycle, engine_for
from timeout_budget.clients.kube import Fields
from timeout_budget.cycle import CycleReport, Engine, RouteSnapshot
from timeout_budget.cycle.route import RouteSteps
from timeout_budget.model.spec import route_key

pytestmark = pytest.mark.unit

NAMES = [f"r{i}" for i in range(12)]


class StableWorld(World):
    """Hands out the same snapshot and Deployment objects while their content is the same."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(names)
        self._snaps: dict[str, tuple[str, RouteSnapshot]] = {}
        self._deps: dict[str, tuple[int, dict[str, Any]]] = {}

    async def list_deployments(
        self, namespace: str, fields: Fields | None = None
    ) -> list[dict[str, Any]]:
        out = []
        for item in await super().list_deployments(namespace, fields):
            name, replicas = item["metadata"]["name"], item["spec"]["replicas"]
            known = self._deps.get(name)
            if known is None or known[0] != replicas:
                self._deps[name] = known = (replicas, item)
            out.append(known[1])
        return out

    def snapshots(self) -> list[RouteSnapshot]:
        out = []
        for snap in super().snapshots():
            content = json.dumps([snap.generation, snap.status], sort_keys=True)
            known = self._snaps.get(snap.name)
            if known is None or known[0] != content:
                self._snaps[snap.name] = known = (content, snap)
            out.append(known[1])
        return out


def play(world: World, seed: int, cycles: int = 120) -> list[tuple[Any, ...]]:
    """A random story: latency moving within and across the bands, people scaling the
    origins and editing statuses, spec changes, pauses of several windows."""
    rng = random.Random(seed)
    engine = engine_for(world)
    seen: list[tuple[Any, ...]] = []
    for _ in range(cycles):
        for name in rng.sample(NAMES, rng.randint(0, 3)):
            key = route_key(NS, name)
            roll = rng.random()
            if roll < 0.5:
                world.p95[key] = rng.choice([5.0, 10.0, 10.5, 40.0, 71.0, 80.0, 97.0, 130.0])
            elif roll < 0.65:
                world.replicas[name] = rng.randint(1, 4)
            elif roll < 0.75:
                world.status[name]["state"] = "Breaching"
            elif roll < 0.85:
                world.generation[name] += 1
            else:
                world.status[name].pop("memory", None)
        if rng.random() < 0.1:
            world.now += rng.choice([45.0, 105.0, 300.0])
        report = cycle(engine, world)
        seen.append(outcome(world, report))
    return seen


def outcome(world: World, report: CycleReport) -> tuple[Any, ...]:
    statuses = json.dumps(world.status, sort_keys=True)
    return (
        statuses,
        dict(world.replicas),
        world.patches,
        report.status_patches,
        report.actions_applied,
        report.unchanged,
        dict(report.states),
    )


@pytest.mark.parametrize("seed", range(6))
def test_the_fast_check_gives_the_same_story_as_deciding_every_route(seed: int) -> None:
    fast, slow = StableWorld(NAMES), World(NAMES)
    assert play(fast, seed) == play(slow, seed)


def test_the_fast_check_does_settle_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    # The control: in the stable world most quiet routes never reach _evaluate_route, so
    # the comparison above does compare the fast check with the full one.
    world = StableWorld(NAMES)
    engine = engine_for(world)
    evaluated = count_evaluations(engine, monkeypatch)
    for _ in range(14):
        cycle(engine, world)
    evaluated.clear()
    report = cycle(engine, world)
    assert report.unchanged == len(NAMES)
    assert evaluated == []
    # A fresh copy of one Deployment (same content) is checked in full, and stays quiet;
    # the next cycle settles it by identity again (the full check kept the new object).
    world._deps["r3"] = (world.replicas["r3"], copy.deepcopy(world._deps["r3"][1]))
    report = cycle(engine, world)
    assert evaluated == ["r3"]
    assert report.unchanged == len(NAMES)
    evaluated.clear()
    assert cycle(engine, world).unchanged == len(NAMES)
    assert evaluated == []


def count_evaluations(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    names: list[str] = []
    original = RouteSteps.run

    async def counted(self: RouteSteps, snap: RouteSnapshot, *args: Any, **kwargs: Any) -> Any:
        names.append(snap.name)
        return await original(self, snap, *args, **kwargs)

    monkeypatch.setattr(RouteSteps, "run", counted)
    return names
