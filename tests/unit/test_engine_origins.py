"""Where the engine reads the origins from (the watch-fed copy when it has one), and what a
route says when its namespace could not be read: held, with the reason."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.engine_world import World, cycle, engine_for
from timeout_budget.clients.kube import Fields, KubeUnavailable
from timeout_budget.model.spec import route_key

pytestmark = pytest.mark.unit


class _Copy:
    """Stands where ``WatchedLists`` stands: the same reads, answered from a copy."""

    def __init__(self, world: World, problem: str | None = None) -> None:
        self.world = world
        self.problem = problem
        self.reads = 0

    async def list_deployments(
        self, namespace: str, fields: Fields | None = None
    ) -> list[dict[str, Any]]:
        self.reads += 1
        if self.problem:
            raise KubeUnavailable(self.problem)
        return await World.list_deployments(self.world, namespace)  # the copy, not a list

    list_hpas = World.list_hpas  # none, as in the world
    list_services = World.list_services
    list_ingresses = World.list_ingresses


class _NoLists(World):
    async def list_deployments(
        self, namespace: str, fields: Fields | None = None
    ) -> list[dict[str, Any]]:
        raise AssertionError("listed although the engine has a copy")


def test_the_engine_reads_the_origins_from_its_copy() -> None:
    world = _NoLists(["api"])
    engine = engine_for(world)
    copy = _Copy(world)
    engine.origins = copy
    world.p95[route_key("shop", "api")] = 110.0  # above the at-risk line: scale up
    report = cycle(engine, world)
    assert copy.reads == 1
    assert report.actions_applied == 1
    assert world.replicas["api"] > 1  # scaled up


def test_a_namespace_not_read_holds_its_routes_and_says_why() -> None:
    world = World(["api"])
    engine = engine_for(world)
    engine.origins = _Copy(world, problem="deployments@*: API server answered 503")
    world.p95[route_key("shop", "api")] = 110.0
    report = cycle(engine, world)
    assert report.actions_applied == 0
    assert world.replicas["api"] == 1  # held
    ready = next(c for c in world.status["api"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ClusterUnavailable"
    assert ready["message"] == (
        "could not read the origin's objects: deployments@*: API server answered 503; "
        "holding everything as it is"
    )
