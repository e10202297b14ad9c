"""The leader Lease: with several replicas, only its holder runs evaluation cycles.

kopf peering decides which replica's handlers and loop daemon run; this Lease makes
sure that, even when peering briefly resumes a standby next to a live active replica,
only one of them ever evaluates (rules in ``model.lease``). Every replica watches the
Lease from startup (one read every ``retry`` seconds), so a standby that becomes active
after the holder died has already seen the old record age and takes over at once.

Only a replica whose loop wants to run takes or renews the Lease; a replica whose loop
stops (paused by peering, shutting down) releases it so the next one need not wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from timeout_budget.clients.kube import Kube, KubeError
from timeout_budget.model.lease import LeaseRecord, LeaseTiming, Sighting, may_take, sight
from timeout_budget.model.timestamps import Clock, rfc3339_micro

log = logging.getLogger("timeout_budget.leader")


def default_identity() -> str:
    """Pod name (the hostname in Kubernetes), process id and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class LeaderLease:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        identity: str,
        timing: LeaseTiming,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
        labels: Mapping[str, str] | None = None,
        title: str = "the leader lease",
    ) -> None:
        self.kube, self.namespace, self.name = kube, namespace, name
        self.identity, self.timing = identity, timing
        self.labels = dict(labels or {})
        """Put on the Lease when this replica writes it (shards list theirs by label)."""
        self.title = title
        """How log lines name it."""
        self.clock, self.wall = clock, wall
        self.wanted = False
        self._record: LeaseRecord | None = None
        self._seen: Sighting | None = None
        self._renewed_at: float | None = None
        self._said: str | None = None
        self._task: asyncio.Task[None] | None = None

    # -- what the loop asks ------------------------------------------------------------
    def leading(self) -> bool:
        """True while this replica holds the Lease and renewed it within the deadline."""
        renewed = self._renewed_at
        return (
            self.wanted
            and renewed is not None
            and self.clock() - renewed < self.timing.renew_deadline
        )

    @property
    def holder(self) -> str:
        return self._record.holder if self._record is not None else ""

    async def want(self) -> None:
        """The loop wants to run: take the Lease as soon as the rules allow."""
        self.wanted = True
        await self.tick()

    async def release(self) -> None:
        """The loop stopped: give the Lease up so another replica need not wait it out."""
        self.wanted = False
        was_leading, self._renewed_at = self._renewed_at is not None, None
        if not was_leading:
            return
        try:
            raw = await self.kube.read_lease(self.namespace, self.name)
            record = record_of(raw) if raw is not None else None
            if record is None or record.holder != self.identity:
                return
            await self.kube.replace_lease(self.namespace, self._body(record, holder=""))
            log.info("lease %s released", self.name)
        except KubeError as exc:  # it expires by itself after the duration
            log.warning("lease %s not released (%s); it expires by itself", self.name, exc)

    # -- the watcher -------------------------------------------------------------------
    def start(self) -> None:
        """Read (and when wanted, take or renew) the Lease every ``retry`` seconds."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="leader-lease")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None
        await self.release()

    async def _run(self) -> None:
        await repeat(self.tick, self.timing.retry)

    async def tick(self) -> None:
        """One read, then a write if this replica should take or renew the Lease."""
        try:
            raw = await self.kube.read_lease(self.namespace, self.name)
        except KubeError as exc:
            self._say(f"cannot read the leader lease (no cycle runs without it): {exc}", True)
            return
        await self.consider(raw)

    async def consider(self, raw: dict[str, Any] | None) -> None:
        """Given the Lease as just read (None: it does not exist), write it if this
        replica should take or renew it."""
        now = self.clock()
        record = record_of(raw) if raw is not None else None
        self._record = record
        if record is not None:
            self._seen = sight(self._seen, record, now)
        if not self.wanted:
            return
        if not may_take(record, self._seen, self.identity, now, self.timing):
            assert record is not None
            self._renewed_at = None
            self._say(f"standing by: {self.title} is held by {record.holder}")
            return
        try:
            if record is None:
                await self.kube.create_lease(self.namespace, self._body(None, self.identity))
            else:
                await self.kube.replace_lease(self.namespace, self._body(record, self.identity))
        except KubeError as exc:  # 409: another replica wrote first; read again next tick
            self._renewed_at = None
            self._say(f"{self.title} not taken: {exc}", True)
            return
        if self._renewed_at is None:
            log.info("lease %s/%s taken by %s", self.namespace, self.name, self.identity)
        self._said = None
        self._renewed_at = now

    def _say(self, text: str, trouble: bool = False) -> None:
        if text != self._said:  # once per change, not every two seconds
            log.log(logging.WARNING if trouble else logging.INFO, "%s", text)
            self._said = text

    def _body(self, record: LeaseRecord | None, holder: str) -> dict[str, Any]:
        now = rfc3339_micro(self.wall())
        transitions = record.transitions if record is not None else 0
        if record is not None and record.holder != holder and holder:
            transitions += 1
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if self.labels:
            metadata["labels"] = dict(self.labels)
        if record is not None:
            metadata["resourceVersion"] = record.resource_version
        spec: dict[str, Any] = {
            "holderIdentity": holder or None,
            "leaseDurationSeconds": max(1, round(self.timing.duration)),
            "renewTime": now,
            "leaseTransitions": transitions,
        }
        if holder and (record is None or record.holder != holder):
            spec["acquireTime"] = now
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": spec,
        }


async def repeat(tick: Callable[[], Awaitable[None]], seconds: float) -> None:
    """``tick`` every ``seconds`` until cancelled (a Lease watcher's life)."""
    while True:
        await tick()
        await asyncio.sleep(seconds)


async def cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` (if any) and wait until it has stopped."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def record_of(raw: dict[str, Any]) -> LeaseRecord:
    spec = raw.get("spec") or {}
    return LeaseRecord(
        holder=str(spec.get("holderIdentity") or ""),
        renew_time=str(spec.get("renewTime") or ""),
        transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=str(raw.get("metadata", {}).get("resourceVersion", "")),
    )
