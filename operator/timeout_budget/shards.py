"""Sharded evaluation: each replica evaluates the shards whose Lease it holds.

With ``TBO_SHARDS=N`` (N > 1) every replica runs (no peering): it renews a member Lease
of its own, lists every shard and member Lease of the loop in one call every ``retry``
seconds (2 s with the default 15 s lease), computes the same balanced plan as the other
replicas from the live members (``model.shards.assign``) and wants exactly the shards the
plan gives it. Each shard Lease changes hands by the leader Lease's rules
(``model.lease``, client-go's timing): a shard held by a live replica is taken only after
that replica released it; one held by a dead replica only after its record stayed
unchanged for the lease duration on the taker's own clock. So two replicas never hold a
shard at once, and a dead replica's shards are taken within the lease duration.

A shard the plan moves elsewhere (a replica joined) is released by ``hand_over``, which
the loop calls between its passes, never during one: the new holder cannot start on a
shard while this replica may still be acting on it. A replica that stops (cleanly)
releases its shards and deletes its member Lease, so the others take over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from timeout_budget.clients.kube import Kube, KubeError
from timeout_budget.cycle.snapshot import RouteSnapshot
from timeout_budget.leader import LeaderLease, cancel, record_of, repeat
from timeout_budget.model import shards as rules
from timeout_budget.model.lease import LeaseTiming, Sighting, sight
from timeout_budget.model.timestamps import Clock

log = logging.getLogger("timeout_budget.shards")


def member_lease_name(loop_name: str, identity: str) -> str:
    """A DNS-safe Lease name for a replica (identities carry host names and pids)."""
    digest = hashlib.blake2b(identity.encode(), digest_size=6).hexdigest()
    return f"{loop_name}-member-{digest}"


class ShardLeases:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        loop_name: str,
        identity: str,
        timing: LeaseTiming,
        shards: int,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
    ) -> None:
        if shards < 2:
            raise ValueError("sharding needs at least 2 shards")
        self.kube, self.namespace, self.identity = kube, namespace, identity
        self.timing, self.clock, self.count = timing, clock, shards
        self.selector = f"{rules.SHARD_LABEL}={loop_name}"

        def labels(role: str) -> dict[str, str]:
            return {rules.SHARD_LABEL: loop_name, rules.ROLE_LABEL: role}

        self.leases = [
            LeaderLease(
                kube,
                namespace,
                f"{loop_name}-shard-{i}",
                identity,
                timing,
                clock,
                wall,
                labels=labels("shard"),
                title=f"shard {i}'s lease",
            )
            for i in range(shards)
        ]
        self.member = LeaderLease(
            kube,
            namespace,
            member_lease_name(loop_name, identity),
            identity,
            timing,
            clock,
            wall,
            labels=labels("member"),
            title="the member lease",
        )
        self.plan: dict[int, str] = {}
        self.leaving: set[int] = set()
        """Held shards the plan gives to another replica: released by ``hand_over``."""
        self.acting: frozenset[int] = frozenset()
        """The shards of the pass in flight (``may_act``)."""
        self._members: dict[str, Sighting] = {}
        self._member_leases: dict[str, str] = {}
        self.on_owned: Callable[[frozenset[int]], None] = lambda owned: None
        """Told the held shards whenever they change (the Cloudflare budget's share)."""
        self._owned: frozenset[int] | None = None
        self._task: asyncio.Task[None] | None = None
        self._said: str | None = None
        self._keys: dict[tuple[str, int | None], int] = {}

    # -- what the loop asks ------------------------------------------------------------
    def owned(self) -> frozenset[int]:
        """The shards this replica holds now (renewed within the deadline)."""
        return frozenset(i for i, lease in enumerate(self.leases) if lease.leading())

    def may_act(self) -> bool:
        """False once any shard of the pass in flight is no longer held: stop writing."""
        return all(self.leases[i].leading() for i in self.acting)

    def owns_key(self, key: str) -> bool:
        """Whether the shard of this shard key (``model.shards``) is held here."""
        return rules.shard_of(key, self.count) in self.owned()

    async def begin_pass(self) -> frozenset[int]:
        """Between passes: hand over what the plan moved away, then the shards this pass
        covers (``may_act`` watches them until the next one)."""
        await self.hand_over()
        owned = self._tell_owned()
        self.acting = owned
        return owned

    def _tell_owned(self) -> frozenset[int]:
        """The shards held now; ``on_owned`` hears of each change as soon as a tick or a
        pass sees it (the zone handlers act on a shard from the moment its Lease is held,
        before the loop's next pass, and must spend the budget's share of it)."""
        owned = self.owned()
        if owned != self._owned:
            self._owned = owned
            log.info("holding shards %s of %d", sorted(owned), self.count)
            self.on_owned(owned)
        return owned

    def shard_of(self, snap: RouteSnapshot) -> int:
        """A route's shard, computed once per spec generation."""
        cache_key = (snap.uid, snap.generation)
        found = self._keys.get(cache_key)
        if found is None:
            key = rules.route_key_for_shard(snap.namespace, snap.spec_dict())
            found = self._keys[cache_key] = rules.shard_of(key, self.count)
        return found

    def mine(
        self, snapshots: Sequence[RouteSnapshot], owned: frozenset[int]
    ) -> list[RouteSnapshot]:
        """The routes of the shards ``owned``; the cache keeps only the routes seen."""
        picked = [s for s in snapshots if self.shard_of(s) in owned]
        if len(self._keys) > 2 * len(snapshots) + 100:
            live = {(s.uid, s.generation) for s in snapshots}
            self._keys = {k: v for k, v in self._keys.items() if k in live}
        return picked

    async def hand_over(self) -> frozenset[int]:
        """Release the held shards the plan gives to others; returns them. Called between
        passes only."""
        leaving, self.leaving = self.leaving, set()
        for i in sorted(leaving):
            await self.leases[i].release()
        if leaving:
            log.info("shards %s handed over (plan: %s)", sorted(leaving), self._plan_text())
        return frozenset(leaving)

    # -- the watcher -------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self.member.wanted = True
            self._task = asyncio.create_task(self._run(), name="shard-leases")

    async def stop(self) -> None:
        """Stop renewing; release every shard and delete the member Lease."""
        await cancel(self._task)
        self._task = None
        for lease in self.leases:
            await lease.release()
        self.member.wanted = False
        with contextlib.suppress(KubeError):
            await self.kube.delete_lease(self.namespace, self.member.name)

    async def _run(self) -> None:
        await repeat(self.tick, self.timing.retry)

    async def tick(self) -> None:
        """One list of every shard and member Lease, then this replica's writes."""
        try:
            found = await self.kube.list_leases(self.namespace, self.selector)
        except KubeError as exc:
            self._say(f"cannot list the shard leases (no shard is taken or kept): {exc}")
            return
        by_name: dict[str, dict[str, Any]] = {r["metadata"]["name"]: r for r in found}
        await self.member.consider(by_name.get(self.member.name))
        now = self.clock()
        self._see_members(found, now)
        plan = rules.assign(self.count, rules.live(self._members, self.identity, now, self.timing))
        if plan != self.plan:
            self.plan = plan
            log.info("shard plan: %s", self._plan_text())
        for i, lease in enumerate(self.leases):
            if plan.get(i) == self.identity:
                lease.wanted = True
                self.leaving.discard(i)
            elif lease.wanted:
                self.leaving.add(i)  # renewed until the loop hands it over between passes
            await lease.consider(by_name.get(lease.name))
            self._tell_owned()
        await self._forget_stale(now)
        self._said = None

    def _see_members(self, found: list[dict[str, Any]], now: float) -> None:
        seen: dict[str, Sighting] = {}
        for raw in found:
            labels = raw.get("metadata", {}).get("labels") or {}
            if labels.get(rules.ROLE_LABEL) != "member":
                continue
            record = record_of(raw)
            if not record.holder or record.holder == self.identity:
                continue
            seen[record.holder] = sight(self._members.get(record.holder), record, now)
            self._member_leases[record.holder] = raw["metadata"]["name"]
        self._members = seen

    async def _forget_stale(self, now: float) -> None:
        for member in rules.stale(self._members, now, self.timing):
            name = self._member_leases.pop(member, None)
            self._members.pop(member, None)
            if name is not None:
                with contextlib.suppress(KubeError):
                    await self.kube.delete_lease(self.namespace, name)
                log.info("member %s gone for long: its lease %s deleted", member, name)

    def _plan_text(self) -> str:
        mine = sorted(i for i, m in self.plan.items() if m == self.identity)
        return f"{len(set(self.plan.values()))} members, shards {mine} planned here"

    def _say(self, text: str) -> None:
        if text != self._said:
            log.warning("%s", text)
            self._said = text
