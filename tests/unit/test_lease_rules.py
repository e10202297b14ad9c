"""The leader Lease's rules (pure) and the replica logic on an in-memory Lease store.

The store below keeps one Lease with a resourceVersion and refuses stale writes with a
409, which is all of the API server's behaviour the logic relies on; the same logic runs
against the real API server in tests/integration/test_leader_lease.py.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from timeout_budget.clients.kube import Conflict
from timeout_budget.leader import LeaderLease
from timeout_budget.model.lease import LeaseRecord, LeaseTiming, may_take, sight

pytestmark = pytest.mark.unit

TIMING = LeaseTiming()  # 15 s / 10 s / 2 s


def record(holder: str, renew: str = "t1", rv: str = "1") -> LeaseRecord:
    return LeaseRecord(holder=holder, renew_time=renew, transitions=0, resource_version=rv)


def test_a_free_or_missing_or_own_lease_may_be_taken() -> None:
    assert may_take(None, None, "a", 0.0, TIMING)
    assert may_take(record(""), None, "a", 0.0, TIMING)
    assert may_take(record("a"), None, "a", 0.0, TIMING)


def test_another_holders_lease_only_after_a_whole_duration_unchanged() -> None:
    held = record("b")
    seen = sight(None, held, now=100.0)
    assert not may_take(held, seen, "a", 100.0 + 14.9, TIMING)
    assert may_take(held, seen, "a", 100.0 + 15.0, TIMING)
    # A renewal (new renewTime) restarts the clock.
    renewed = record("b", renew="t2", rv="2")
    seen = sight(seen, renewed, now=110.0)
    assert seen.since == 110.0
    assert not may_take(renewed, seen, "a", 124.0, TIMING)
    # The same record read again keeps its first sighting.
    assert sight(seen, renewed, now=120.0).since == 110.0


def test_timing_must_let_the_holder_stop_before_another_starts() -> None:
    with pytest.raises(ValueError, match="renew_deadline < duration"):
        LeaseTiming(duration=10, renew_deadline=10, retry=2)
    scaled = LeaseTiming.for_duration(6)
    assert scaled.retry < scaled.renew_deadline < scaled.duration


class Store:
    """One Lease, with resourceVersion checks (a 409 on a stale write)."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.down = False

    async def read_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        if self.down:
            from timeout_budget.clients.kube import KubeUnavailable

            raise KubeUnavailable("read lease: connection refused")
        return copy.deepcopy(self.lease)

    async def create_lease(self, namespace: str, body: dict[str, Any]) -> None:
        if self.lease is not None:
            raise Conflict("create lease: conflict (AlreadyExists)", 409)
        self._write(body)

    async def replace_lease(self, namespace: str, body: dict[str, Any]) -> None:
        assert self.lease is not None
        if body["metadata"]["resourceVersion"] != self.lease["metadata"]["resourceVersion"]:
            raise Conflict("replace lease: conflict", 409)
        self._write(body)

    def _write(self, body: dict[str, Any]) -> None:
        self.version += 1
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = str(self.version)

    @property
    def holder(self) -> str | None:
        return None if self.lease is None else self.lease["spec"]["holderIdentity"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def replica(store: Store, name: str, clock: Clock) -> LeaderLease:
    return LeaderLease(store, "ops", "loop", name, TIMING, clock=clock, wall=lambda: 1.8e9)  # type: ignore[arg-type]


Scenario = Callable[[Store, Clock, LeaderLease, LeaderLease], Awaitable[None]]


def play(scenario: Scenario, wanting: str = "ab") -> None:
    """Run ``scenario`` on a fresh store and clock with replicas a and b, after those named in
    ``wanting`` asked for the lease (in that order)."""
    store, clock = Store(), Clock()
    replicas = {name: replica(store, name, clock) for name in "ab"}

    async def main() -> None:
        for name in wanting:
            await replicas[name].want()
        await scenario(store, clock, replicas["a"], replicas["b"])

    asyncio.run(main())


def test_two_replicas_that_both_want_the_lease_never_both_lead() -> None:
    async def scenario(store: Store, clock: Clock, a: LeaderLease, b: LeaderLease) -> None:
        assert a.leading()
        assert not b.leading()
        assert store.holder == "a"
        # a renews every retry; b never gets it, however long it waits.
        for _ in range(30):
            clock.now += TIMING.retry
            await a.tick()
            await b.tick()
            assert a.leading()
            assert not b.leading()
        assert store.lease is not None
        assert store.lease["spec"]["leaseTransitions"] == 0

    play(scenario)


def test_a_dead_holder_is_replaced_after_the_duration_and_it_had_stopped_by_then() -> None:
    async def scenario(store: Store, clock: Clock, a: LeaderLease, b: LeaderLease) -> None:
        died = clock.now  # a stops renewing (killed): only b ticks from here
        while not b.leading():
            clock.now += TIMING.retry
            await b.tick()
            if clock.now - died >= TIMING.renew_deadline:
                assert not a.leading(), "a would still act after its renew deadline"
        waited = clock.now - died
        assert TIMING.duration <= waited <= TIMING.duration + TIMING.retry
        assert store.holder == "b"
        assert store.lease is not None
        assert store.lease["spec"]["leaseTransitions"] == 1

    play(scenario)


def test_release_hands_over_at_once() -> None:
    async def scenario(store: Store, clock: Clock, a: LeaderLease, b: LeaderLease) -> None:
        await a.release()
        assert store.holder is None
        await b.tick()
        assert b.leading()
        assert not a.leading()

    play(scenario)


def test_an_unreadable_lease_ends_leadership_at_the_renew_deadline() -> None:
    async def scenario(store: Store, clock: Clock, a: LeaderLease, b: LeaderLease) -> None:
        assert a.leading()
        store.down = True
        clock.now += TIMING.renew_deadline - 0.1
        await a.tick()
        assert a.leading()
        clock.now += 0.2
        await a.tick()
        assert not a.leading()
        store.down = False
        await a.tick()
        assert a.leading(), "its own lease is renewed as soon as the API answers again"

    play(scenario, wanting="a")


def test_a_replica_that_does_not_want_the_lease_only_reads() -> None:
    async def scenario(store: Store, clock: Clock, a: LeaderLease, b: LeaderLease) -> None:
        await a.tick()
        assert store.lease is None
        assert not a.leading()

    play(scenario, wanting="")
