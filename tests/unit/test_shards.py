"""Sharding's rules (pure) and the replicas' shard Leases on an in-memory Lease store.

The store keeps Leases by name with resourceVersions, refuses stale writes with a 409 and
lists by label, which is all of the API server's behaviour the logic relies on; the same
logic runs against the real API server in tests/integration/test_sharded_replicas.py."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from timeout_budget.clients.kube import Conflict
from timeout_budget.model.lease import LeaseTiming
from timeout_budget.model.shards import (
    assign,
    namespace_key,
    route_key_for_shard,
    shard_of,
    zone_key,
)
from timeout_budget.shards import ShardLeases, member_lease_name

pytestmark = pytest.mark.unit

TIMING = LeaseTiming()  # 15 s / 10 s / 2 s


def test_the_shard_key_is_the_zone_else_the_namespace() -> None:
    spec = {"edge": {"zoneRef": {"name": "example-com"}}}
    assert route_key_for_shard("shop", spec) == zone_key("shop", "example-com")
    assert route_key_for_shard("shop", {}) == namespace_key("shop")
    assert route_key_for_shard("shop", {"edge": {"zoneRef": {}}}) == namespace_key("shop")
    assert route_key_for_shard("shop", {"edge": "garbage"}) == namespace_key("shop")


def test_shard_of_is_stable_and_spreads() -> None:
    assert shard_of("zone:shop/example-com", 4) == shard_of("zone:shop/example-com", 4)
    counts = [0] * 4
    for i in range(400):
        counts[shard_of(zone_key("ns", f"zone-{i}"), 4)] += 1
    assert min(counts) > 60, counts


@pytest.mark.parametrize(("shards", "members"), [(2, 2), (10, 3), (3, 5), (16, 4), (7, 1)])
def test_the_plan_is_balanced_and_the_same_everywhere(shards: int, members: int) -> None:
    names = [f"replica-{i}" for i in range(members)]
    plan = assign(shards, names)
    assert set(plan) == set(range(shards))
    load = [list(plan.values()).count(n) for n in names]
    assert max(load) - min(load) <= 1, load
    assert assign(shards, list(reversed(names))) == plan


def test_a_member_joining_moves_few_shards() -> None:
    before = assign(12, ["a", "b", "c"])
    after = assign(12, ["a", "b", "c", "d"])
    moved = [s for s in range(12) if before[s] != after[s]]
    assert sorted(set(after.values())) == ["a", "b", "c", "d"]
    assert len(moved) <= 6, moved  # 3 must move to d; rebalancing may move a few more


class Store:
    """Leases by name: resourceVersion checks (409 on a stale write), list by label."""

    def __init__(self) -> None:
        self.leases: dict[str, dict[str, Any]] = {}
        self.version = 0

    async def list_leases(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        key, _, value = label_selector.partition("=")
        return [
            copy.deepcopy(lease)
            for lease in self.leases.values()
            if (lease["metadata"].get("labels") or {}).get(key) == value
        ]

    async def create_lease(self, namespace: str, body: dict[str, Any]) -> None:
        if body["metadata"]["name"] in self.leases:
            raise Conflict("create lease: conflict (AlreadyExists)", 409)
        self._write(body)

    async def replace_lease(self, namespace: str, body: dict[str, Any]) -> None:
        now = self.leases[body["metadata"]["name"]]
        if body["metadata"]["resourceVersion"] != now["metadata"]["resourceVersion"]:
            raise Conflict("replace lease: conflict", 409)
        self._write(body)

    async def read_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.leases.get(name))

    async def delete_lease(self, namespace: str, name: str) -> None:
        self.leases.pop(name, None)

    def _write(self, body: dict[str, Any]) -> None:
        self.version += 1
        lease = copy.deepcopy(body)
        lease["metadata"]["resourceVersion"] = str(self.version)
        self.leases[lease["metadata"]["name"]] = lease

    def holders(self, shards: int) -> list[str | None]:
        return [
            (self.leases.get(f"loop-shard-{i}") or {}).get("spec", {}).get("holderIdentity")
            for i in range(shards)
        ]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Fleet:
    """Replicas over one store and clock; ``step`` is one retry period for the live ones,
    each ending its pass (``begin_pass``) as the loop does."""

    def __init__(self, shards: int) -> None:
        self.store, self.clock, self.shards = Store(), Clock(), shards
        self.replicas: dict[str, ShardLeases] = {}
        self.dead: set[str] = set()

    def add(self, name: str) -> ShardLeases:
        replica = ShardLeases(
            self.store,  # type: ignore[arg-type]
            "ops",
            "loop",
            name,
            TIMING,
            self.shards,
            clock=self.clock,
            wall=lambda: 1.8e9,
        )
        replica.member.wanted = True
        self.replicas[name] = replica
        return replica

    async def step(self) -> None:
        self.clock.now += TIMING.retry
        for name, replica in self.replicas.items():
            if name not in self.dead:
                await replica.tick()
                await replica.begin_pass()
            self.check()

    def check(self) -> None:
        """Never two replicas acting on one shard."""
        for shard in range(self.shards):
            acting = [
                n for n, r in self.replicas.items() if n not in self.dead and shard in r.owned()
            ]
            assert len(acting) <= 1, (shard, acting)

    def owned(self) -> dict[str, list[int]]:
        return {n: sorted(r.owned()) for n, r in self.replicas.items() if n not in self.dead}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_three_replicas_share_the_shards_and_never_overlap() -> None:
    async def scenario() -> None:
        fleet = Fleet(6)
        for name in "abc":
            fleet.add(name)
        for _ in range(5):
            await fleet.step()
        owned = fleet.owned()
        assert sorted(s for shards in owned.values() for s in shards) == list(range(6))
        assert all(len(shards) == 2 for shards in owned.values()), owned
        assert fleet.store.holders(6) == [fleet.replicas["a"].plan[i] for i in range(6)]

    run(scenario())


def test_a_dead_replicas_shards_are_taken_within_the_lease_duration() -> None:
    async def scenario() -> None:
        fleet = Fleet(4)
        for name in "abc":
            fleet.add(name)
        for _ in range(5):
            await fleet.step()
        lost = fleet.owned()["c"]
        assert lost
        fleet.dead.add("c")  # SIGKILL: no release, no more renewals
        died = fleet.clock.now
        while sorted(s for v in fleet.owned().values() for s in v) != list(range(4)):
            await fleet.step()
            assert fleet.clock.now - died <= TIMING.duration + 3 * TIMING.retry
        assert fleet.owned().keys() == {"a", "b"}
        assert all(len(v) == 2 for v in fleet.owned().values())

    run(scenario())


def test_a_replica_added_later_gets_shards_handed_over_between_passes() -> None:
    async def scenario() -> None:
        fleet = Fleet(4)
        fleet.add("a")
        for _ in range(3):
            await fleet.step()
        assert fleet.owned() == {"a": [0, 1, 2, 3]}
        fleet.add("b")
        for _ in range(4):
            await fleet.step()
        owned = fleet.owned()
        assert len(owned["a"]) == 2, owned
        assert len(owned["b"]) == 2, owned

    run(scenario())


def test_a_clean_stop_releases_at_once_and_deletes_the_member_lease() -> None:
    async def scenario() -> None:
        fleet = Fleet(2)
        a, b = fleet.add("a"), fleet.add("b")
        for _ in range(3):
            await fleet.step()
        assert fleet.owned() == {"a": [0], "b": [1]} or fleet.owned() == {"a": [1], "b": [0]}
        await b.stop()
        fleet.dead.add("b")
        assert member_lease_name("loop", "b") not in fleet.store.leases
        await fleet.step()  # a's view: b's member Lease is gone; its shard is free
        await fleet.step()
        assert fleet.owned() == {"a": [0, 1]}
        assert a.may_act()

    run(scenario())


def test_losing_a_shard_mid_pass_stops_the_pass_acting() -> None:
    async def scenario() -> None:
        fleet = Fleet(2)
        a = fleet.add("a")
        await fleet.step()
        owned = await a.begin_pass()
        assert owned == {0, 1}
        assert a.may_act()
        fleet.clock.now += TIMING.renew_deadline  # no renewal within the deadline
        assert not a.may_act()

    run(scenario())


def test_budget_share_follows_the_held_shards() -> None:
    async def scenario() -> None:
        fleet = Fleet(4)
        a = fleet.add("a")
        seen: list[frozenset[int]] = []
        a.on_owned = seen.append
        await fleet.step()
        assert seen[-1] == frozenset(range(4))
        fleet.add("b")
        for _ in range(4):
            await fleet.step()
        assert len(seen[-1]) == 2

    run(scenario())


def test_the_budget_share_is_told_when_a_lease_is_taken_not_at_the_next_pass() -> None:
    """The zone handlers act on a shard as soon as its Lease is held: a replica that held
    nothing (share 0, a budget of one request) must hear of its shards from the tick that
    takes them, or it spends a zone's first sync on a one-request budget."""

    async def scenario() -> None:
        fleet = Fleet(4)
        a = fleet.add("a")
        seen: list[frozenset[int]] = []
        a.on_owned = seen.append
        fleet.clock.now += TIMING.retry
        await a.tick()  # no pass in between
        assert a.owned() == frozenset(range(4))
        # told of each lease as it is taken: {0}, {0, 1}, ... before anything else runs
        assert seen == [frozenset(range(n)) for n in range(1, 5)]

    run(scenario())
