"""The watched routes (``route_watch``): what the copy keeps, what wakes the loop, which
shards are watched with which selector, and the loop waiting for the first list. The
watches themselves run against the real API server in the integration tests
(tests/integration/test_operator_loop.py, test_sharded_replicas.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import kubernetes
import pytest

from tests.support.engine_world import World, engine_for
from tests.support.loop_doubles import Routes, Stopped
from timeout_budget import app, loop
from timeout_budget.model.shards import ROUTE_SHARD_LABEL, route_shard_label
from timeout_budget.route_watch import RouteWatch, SnapshotStore
from timeout_budget.settings import OperatorSettings

pytestmark = pytest.mark.unit


def budget(name: str, generation: int, **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "shop",
            "name": name,
            "uid": f"uid-{name}",
            "generation": generation,
            **meta,
        },
        "spec": {"route": {"host": f"{name}.example.com"}},
        "status": {"state": "Healthy"},
    }


def test_a_new_route_or_a_new_spec_wakes_the_loop_a_status_write_does_not() -> None:
    woken: list[int] = []
    store = SnapshotStore(lambda: woken.append(1))
    store.put(budget("listed", 1))  # the list: the first cycle reads it anyway
    assert woken == []
    store.apply("ADDED", budget("new", 1))
    assert len(woken) == 1
    store.apply("MODIFIED", {**budget("new", 1), "status": {"state": "AtRisk"}})
    assert len(woken) == 1  # the operator's own status write
    assert {s.name: s.status_dict()["state"] for s in store.all()} == {
        "listed": "Healthy",
        "new": "AtRisk",
    }
    store.apply("MODIFIED", budget("new", 2))
    assert len(woken) == 2
    assert store.in_namespace("shop")[0].namespace == "shop"
    assert store.in_namespace("other") == []


def test_a_route_being_deleted_or_deleted_leaves_the_copy() -> None:
    store = SnapshotStore()
    store.put(budget("a", 1))
    store.put(budget("b", 1))
    store.apply("MODIFIED", budget("a", 1, deletionTimestamp="2026-12-06T00:00:00Z"))
    store.apply("DELETED", budget("b", 1))
    assert store.all() == []
    assert len(store) == 0


def test_each_followed_shard_gets_a_label_selected_watch_per_served_namespace() -> None:
    client = kubernetes.client.ApiClient(kubernetes.client.Configuration(host="http://127.0.0.1:9"))
    routes = RouteWatch(client, ["b", "a"], backoff_seconds=(30.0, 30.0))
    try:
        routes.follow([0, 2])
        selectors = {
            s: sorted((w.namespace, w.label_selector) for w in ws)
            for s, ws in routes.watchers.items()
        }
        assert selectors == {
            0: [("a", f"{ROUTE_SHARD_LABEL}=0"), ("b", f"{ROUTE_SHARD_LABEL}=0")],
            2: [("a", f"{ROUTE_SHARD_LABEL}=2"), ("b", f"{ROUTE_SHARD_LABEL}=2")],
        }
        assert routes.ready() == frozenset()  # nothing listed (no server here)
        kept = routes.watchers[2]
        routes.follow([2, 3])
        assert sorted(routes.watchers) == [2, 3]
        assert routes.watchers[2] is kept  # a shard still held keeps its watch
        assert routes.snapshots() == []
    finally:
        routes.stop()
    assert routes.watchers == {}


def test_unsharded_every_route_is_watched_without_a_selector() -> None:
    client = kubernetes.client.ApiClient(kubernetes.client.Configuration(host="http://127.0.0.1:9"))
    routes = RouteWatch(client, None, backoff_seconds=(30.0, 30.0))
    try:
        routes.start()
        assert [(w.namespace, w.label_selector) for w in routes.watchers[None]] == [(None, None)]
    finally:
        routes.stop()


def test_sharded_the_route_is_labelled_with_its_shard_and_only_when_needed() -> None:
    settings = OperatorSettings.from_env({"TBO_PROMETHEUS_URL": "http://p:9090", "TBO_SHARDS": "4"})
    spec = {"edge": {"zoneRef": {"name": "example-com"}}}
    want = route_shard_label("shop", spec, 4)
    assert app.label_shard(settings, "shop", spec, {}) == {ROUTE_SHARD_LABEL: want}
    wrong = str((int(want) + 1) % 4)
    assert app.label_shard(settings, "shop", spec, {ROUTE_SHARD_LABEL: wrong}) == {
        ROUTE_SHARD_LABEL: want
    }
    assert app.label_shard(settings, "shop", spec, {ROUTE_SHARD_LABEL: want}) == {}
    unsharded = OperatorSettings.from_env({"TBO_PROMETHEUS_URL": "http://p:9090"})
    assert app.label_shard(unsharded, "shop", spec, {}) == {}


class Engine:
    def __init__(self) -> None:
        self.cycles = 0
        self.near: set[Any] = set()
        self.metrics = engine_for(World([])).metrics
        self.origins = None
        self.passes = asyncio.Lock()
        self.closing = False

    async def evaluate(self, snapshots: Any, lane: Any = None) -> Any:
        from timeout_budget.cycle import CycleReport

        self.cycles += 1
        return CycleReport()


def test_the_first_cycle_waits_for_the_routes_first_list() -> None:
    async def scenario() -> tuple[int, int]:
        engine, routes, stopped = Engine(), Routes(listed=False), Stopped()
        task = asyncio.create_task(
            loop.run(engine, routes, asyncio.Event(), stopped, 60.0)  # type: ignore[arg-type]
        )
        await asyncio.sleep(1.2)
        before = engine.cycles  # not listed: no cycle (an empty one could look like deletions)
        routes.listed = True
        await asyncio.sleep(1.0)
        stopped.event.set()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return before, engine.cycles

    before, after = asyncio.run(scenario())
    assert before == 0
    assert after == 1  # at once once listed, not an interval later


class Listed:
    def __init__(self, *ready: int | None) -> None:
        self._ready = frozenset(ready)

    def ready(self) -> frozenset[int | None]:
        return self._ready


def test_a_zone_deletion_waits_until_the_routes_that_may_use_it_are_listed() -> None:
    import kopf

    from timeout_budget.model.shards import shard_of, zone_key

    key = zone_key("shop", "example-com")
    with pytest.raises(kopf.TemporaryError, match="the routes are not listed yet"):
        app.hold_until_listed(None, Listed(), key)  # type: ignore[arg-type]
    app.hold_until_listed(None, Listed(None), key)  # type: ignore[arg-type]

    class Shards:
        count = 4

    mine = shard_of(key, 4)
    with pytest.raises(kopf.TemporaryError, match=f"shard {mine}'s routes are not listed"):
        app.hold_until_listed(Shards(), Listed((mine + 1) % 4), key)  # type: ignore[arg-type]
    app.hold_until_listed(Shards(), Listed(mine), key)  # type: ignore[arg-type]
