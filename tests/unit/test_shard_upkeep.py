"""Sharded, the holder of a labeled route's shard does what kopf (watching only unlabeled
routes) no longer does for it (``shard_upkeep``): relabel a route whose zone moved it,
add kopf's finalizer to a route created already labeled, and run the deletion handler,
then remove the finalizer. The watches and patches run against the real API server in
tests/integration/test_sharded_replicas.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping
from typing import Any

import kopf
import pytest

from timeout_budget import app
from timeout_budget.clients.kube import KubeError
from timeout_budget.cycle.snapshot import RouteSnapshot
from timeout_budget.model.shards import ROUTE_SHARD_LABEL, route_shard_label
from timeout_budget.route_watch import KOPF_FINALIZER, SnapshotStore
from timeout_budget.settings import OperatorSettings
from timeout_budget.shard_upkeep import (
    ShardUpkeep,
    finalizer_addition,
    finalizer_removal,
    misfiled,
)

pytestmark = pytest.mark.unit

SHARDS = 4


def route(name: str, zone: str | None = None, **meta: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"route": {"host": f"{name}.example.com"}}
    if zone:
        spec["edge"] = {"zoneRef": {"name": zone}}
    return {
        "metadata": {
            "namespace": "shop",
            "name": name,
            "uid": f"uid-{name}",
            "generation": 1,
            "finalizers": [KOPF_FINALIZER],
            **meta,
        },
        "spec": spec,
    }


def shard(body: Mapping[str, Any]) -> int:
    return int(route_shard_label("shop", body["spec"], SHARDS))


def zone_on(want: int) -> str:
    """A zone name whose routes in ``shop`` fall on shard ``want``."""
    for i in range(500):
        if shard(route("x", f"z{i}")) == want:
            return f"z{i}"
    raise AssertionError(want)


class Kube:
    def __init__(self, fail: bool = False) -> None:
        self.patches: list[tuple[str, Any]] = []
        self.fail = fail

    async def patch_budget(self, namespace: str, name: str, body: Any) -> None:
        if self.fail:
            raise KubeError("API server answered 503 Service Unavailable")
        self.patches.append((name, body))


class Shards:
    count = SHARDS

    def __init__(self, owned: Collection[int]) -> None:
        self._owned = frozenset(owned)

    def owned(self) -> frozenset[int]:
        return self._owned

    def shard_of(self, snap: RouteSnapshot) -> int:
        return int(route_shard_label(snap.namespace, snap.spec_dict(), SHARDS))


class Routes:
    """Per shard label, the store its watch fills."""

    def __init__(self, **by_shard: list[dict[str, Any]]) -> None:
        self.stores: dict[int, SnapshotStore] = {}
        for key, bodies in by_shard.items():
            store = self.stores[int(key.removeprefix("s"))] = SnapshotStore()
            for body in bodies:
                store.put(body)

    def ready(self) -> frozenset[int | None]:
        return frozenset(self.stores)

    def filed(self, shards: Collection[int]) -> list[tuple[int, RouteSnapshot]]:
        return [(s, snap) for s in shards for snap in self.stores[s].all()]

    def being_deleted(self, shards: Collection[int]) -> list[dict[str, Any]]:
        return [b for s in shards for b in self.stores[s].being_deleted()]

    def without_finalizer(self, shards: Collection[int]) -> list[Any]:
        return [k for s in shards for k in self.stores[s].without_finalizer()]


class Zones:
    def __init__(self) -> None:
        self.revived: list[str] = []

    def revive(self, key: str) -> None:
        self.revived.append(key)


class Finalizer:
    def __init__(self, pending: str | None = None) -> None:
        self.calls: list[str] = []
        self.pending = pending

    async def __call__(self, body: Mapping[str, Any], logger: Any, zones: Any) -> None:
        self.calls.append(body["metadata"]["name"])
        if self.pending:
            raise kopf.TemporaryError(self.pending, delay=30)


def upkeep(
    routes: Routes, owned: Collection[int], kube: Kube, fin: Finalizer, clock: list[float]
) -> ShardUpkeep:
    return ShardUpkeep(
        kube,  # type: ignore[arg-type]
        routes,  # type: ignore[arg-type]
        Shards(owned),  # type: ignore[arg-type]
        Zones(),  # type: ignore[arg-type]
        clock=lambda: clock[0],
        finalize=fin,
    )


def test_kopf_watches_only_unlabeled_routes_when_sharded() -> None:
    sharded, single = kopf.OperatorSettings(), kopf.OperatorSettings()
    prometheus = {"TBO_PROMETHEUS_URL": "http://p:9090"}
    app.configure_kopf(sharded, OperatorSettings.from_env({**prometheus, "TBO_SHARDS": "4"}))
    app.configure_kopf(single, OperatorSettings.from_env(prometheus))
    selected = {v for _, v in sharded.watching.label_selectors.items()}
    assert f"{ROUTE_SHARD_LABEL} notin (0,1,2,3)" in selected
    assert not any(ROUTE_SHARD_LABEL in v for _, v in single.watching.label_selectors.items())


def test_a_route_whose_zone_moved_it_is_labeled_with_its_new_shard() -> None:
    moved = route("moved", zone_on(2))
    stays = route("stays", zone_on(1))
    assert misfiled([(1, s) for s in snapshots_of(moved, stays)], Shards([1]).shard_of) == [
        (snapshots_of(moved)[0], 2)
    ]
    kube = Kube()
    asyncio.run(upkeep(Routes(s1=[moved, stays]), {1}, kube, Finalizer(), [0.0]).tick())
    assert kube.patches == [("moved", {"metadata": {"labels": {ROUTE_SHARD_LABEL: "2"}}})]


def snapshots_of(*bodies: dict[str, Any]) -> list[RouteSnapshot]:
    store = SnapshotStore()
    for body in bodies:
        store.put(body)
    return store.all()


def test_a_route_created_with_its_label_gets_kopfs_finalizer_others_kept() -> None:
    bare = route("bare", zone_on(1), finalizers=[])
    other = route("other", zone_on(1), finalizers=["example.com/keep"])
    kube = Kube()
    work = upkeep(Routes(s1=[bare, other, route("fine", zone_on(1))]), {1}, kube, Finalizer(), [0])
    asyncio.run(work.tick())
    assert kube.patches == [
        ("bare", finalizer_addition([])),
        ("other", finalizer_addition(["example.com/keep"])),
    ]
    assert finalizer_addition(["example.com/keep"])[1]["value"] == KOPF_FINALIZER
    assert work.zones.revived == ["shop/bare", "shop/other"]  # type: ignore[union-attr]


def test_a_deleted_route_is_restored_then_released_only_by_its_zones_holder() -> None:
    deleting = {"deletionTimestamp": "2026-12-06T21:00:00Z"}
    gone = route("gone", zone_on(1), **deleting)
    kube, fin = Kube(), Finalizer()
    asyncio.run(upkeep(Routes(s1=[gone]), {1}, kube, fin, [0.0]).tick())
    assert fin.calls == ["gone"]
    assert kube.patches == [("gone", finalizer_removal(gone["metadata"]))]
    assert finalizer_removal(gone["metadata"])[1]["value"] == []
    # Filed under shard 1 but its zone is on shard 3, not held here: moved, not restored.
    astray = route("astray", zone_on(3), **deleting)
    kube, fin = Kube(), Finalizer()
    asyncio.run(upkeep(Routes(s1=[astray]), {1}, kube, fin, [0.0]).tick())
    assert fin.calls == []
    assert kube.patches == [("astray", {"metadata": {"labels": {ROUTE_SHARD_LABEL: "3"}}})]


def test_a_deletion_that_cannot_be_done_yet_keeps_the_finalizer_and_waits_its_delay(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gone = route("gone", zone_on(1), deletionTimestamp="2026-12-06T21:00:00Z")
    kube, fin, clock = Kube(), Finalizer("Cloudflare cleanup pending: 503"), [0.0]
    work = upkeep(Routes(s1=[gone]), {1}, kube, fin, clock)
    with caplog.at_level(logging.WARNING, "timeout_budget.shard_upkeep"):
        asyncio.run(work.tick())
    assert kube.patches == []
    assert fin.calls == ["gone"]
    assert "deletion waits: Cloudflare cleanup pending: 503" in caplog.text
    clock[0] = 29.0
    asyncio.run(work.tick())
    assert fin.calls == ["gone"]  # inside its 30 s delay
    fin.pending, clock[0] = None, 31.0
    asyncio.run(work.tick())
    assert fin.calls == ["gone", "gone"]
    assert kube.patches == [("gone", finalizer_removal(gone["metadata"]))]


def test_a_failed_patch_is_said_and_tried_again_at_the_next_tick(
    caplog: pytest.LogCaptureFixture,
) -> None:
    moved = route("moved", zone_on(2))
    kube = Kube(fail=True)
    work = upkeep(Routes(s1=[moved]), {1}, kube, Finalizer(), [0.0])
    with caplog.at_level(logging.WARNING, "timeout_budget.shard_upkeep"):
        asyncio.run(work.tick())
    assert "moved to shard 2 failed, retried: API server answered 503" in caplog.text
    kube.fail = False
    asyncio.run(work.tick())
    assert kube.patches == [("moved", {"metadata": {"labels": {ROUTE_SHARD_LABEL: "2"}}})]


def test_nothing_is_touched_in_shards_held_but_not_listed_yet() -> None:
    moved = route("moved", zone_on(2))
    routes = Routes(s1=[moved])
    routes.ready = lambda: frozenset()  # type: ignore[method-assign]
    kube = Kube()
    asyncio.run(upkeep(routes, {1}, kube, Finalizer(), [0.0]).tick())
    assert kube.patches == []


def test_the_store_keeps_a_deleting_routes_metadata_and_spec_until_its_finalizer_goes() -> None:
    store = SnapshotStore()
    body = route("r", "z1", deletionTimestamp="2026-12-06T21:00:00Z", labels={"a": "b"})
    store.apply("MODIFIED", body)
    assert store.all() == []
    (kept,) = store.being_deleted()
    assert kept["spec"] == body["spec"]
    assert kept["metadata"]["finalizers"] == [KOPF_FINALIZER]
    assert "labels" not in kept["metadata"]
    store.apply("MODIFIED", {**body, "metadata": {**body["metadata"], "finalizers": []}})
    assert store.being_deleted() == []
    store.apply("MODIFIED", route("r", "z1", finalizers=[]))
    assert store.without_finalizer() == [(("shop", "r"), [])]
    store.apply("DELETED", route("r", "z1"))
    assert store.without_finalizer() == []
    assert store.being_deleted() == []
