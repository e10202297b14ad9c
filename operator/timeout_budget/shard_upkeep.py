"""Sharded: what kopf does for a route it never sees, done by the holder of its shard.

With ``TBO_SHARDS=N`` kopf's TimeoutBudget watch selects only routes without the shard
label (``!timeoutbudget.io/shard``, server-side): kopf adds its finalizer to a new route
and labels it with its shard, and the route then leaves kopf's view. A replica's kopf
therefore holds no state for the fleet's routes, and the fleet's status patches are not
sent to every replica. The labeled routes are watched per shard (``route_watch``) by the
replica holding that shard, which keeps them in line every ``interval`` seconds:

* **the label**: a route whose spec moved it to another shard (its ``zoneRef`` changed)
  is labeled anew, and leaves this watch for the new holder's;
* **the finalizer**: a route created with the label already set (kopf never saw it) gets
  kopf's finalizer;
* **the deletion**: a route being deleted gets the operator's finalizer
  (``finalizer.finalize``: its Cache Rule, the DNS flag, the Service and HPA), then its
  finalizer is removed; when that cannot be done yet, it is retried after the delay
  the finalizer gives, saying why.

Only the shards both held and listed are kept (``ready``): the route's shard must be
this replica's when it acts, as for the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

import kopf

from timeout_budget import finalizer
from timeout_budget.clients.kube import Kube, KubeError
from timeout_budget.edge.registry import ZoneRegistry
from timeout_budget.leader import cancel, repeat
from timeout_budget.model.shards import ROUTE_SHARD_LABEL, route_shard_label
from timeout_budget.model.spec import route_key
from timeout_budget.route_watch import KOPF_FINALIZER, RouteWatch, finalizer_addition
from timeout_budget.shards import ShardLeases

log = logging.getLogger("timeout_budget.shard_upkeep")

INTERVAL_SECONDS = 2.0
"""How often the held shards' routes are kept in line (a deletion waits at most this)."""

Finalize = Callable[[Mapping[str, Any], logging.Logger, ZoneRegistry | None], Awaitable[None]]


def misfiled(
    filed: Collection[tuple[int, Any]], shard_of: Callable[[Any], int]
) -> list[tuple[Any, int]]:
    """The routes whose label files them under another shard than their spec's."""
    return [(snap, want) for shard, snap in filed if (want := shard_of(snap)) != shard]


def finalizer_removal(metadata: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A JSON patch removing kopf's finalizer, only if the list is still as read."""
    finalizers = list(metadata.get("finalizers") or ())
    return [
        {"op": "test", "path": "/metadata/finalizers", "value": finalizers},
        {
            "op": "replace",
            "path": "/metadata/finalizers",
            "value": [f for f in finalizers if f != KOPF_FINALIZER],
        },
    ]


class ShardUpkeep:
    def __init__(
        self,
        kube: Kube,
        routes: RouteWatch,
        shards: ShardLeases,
        zones: ZoneRegistry | None,
        clock: Callable[[], float] = time.monotonic,
        finalize: Finalize = finalizer.finalize,
    ) -> None:
        self.kube, self.routes, self.shards, self.zones = kube, routes, shards, zones
        self.clock, self.finalize = clock, finalize
        self.retry_at: dict[str, float] = {}
        """By route uid: when its deletion is tried again."""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(
                repeat(self.tick, INTERVAL_SECONDS), name="shard-upkeep"
            )

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    def ready(self) -> frozenset[int]:
        listed = self.routes.ready()
        return frozenset(s for s in self.shards.owned() if s in listed)

    async def tick(self) -> None:
        ready = self.ready()
        if not ready:
            return
        for snap, want in misfiled(self.routes.filed(ready), self.shards.shard_of):
            await self._move(snap.namespace, snap.name, want)
        for (namespace, name), finalizers in self.routes.without_finalizer(ready):
            if (
                await self._write(
                    namespace, name, finalizer_addition(finalizers), "finalizer added"
                )
                and self.zones is not None
            ):
                self.zones.revive(route_key(namespace, name))  # kopf's create would have
        deleting = self.routes.being_deleted(ready)
        for body in deleting:
            await self._delete(body, ready)
        live = {str(body["metadata"]["uid"]) for body in deleting}
        self.retry_at = {uid: t for uid, t in self.retry_at.items() if uid in live}

    async def _move(self, namespace: str, name: str, shard: int) -> None:
        patch = {"metadata": {"labels": {ROUTE_SHARD_LABEL: str(shard)}}}
        await self._write(namespace, name, patch, f"moved to shard {shard}")

    async def _write(
        self, namespace: str, name: str, patch: dict[str, Any] | list[dict[str, Any]], said: str
    ) -> bool:
        try:
            await self.kube.patch_budget(namespace, name, patch)
        except KubeError as exc:
            log.warning("route %s/%s: %s failed, retried: %s", namespace, name, said, exc)
            return False
        log.info("route %s/%s: %s", namespace, name, said)
        return True

    async def _delete(self, body: Mapping[str, Any], ready: frozenset[int]) -> None:
        meta = body["metadata"]
        namespace, name, uid = str(meta["namespace"]), str(meta["name"]), str(meta["uid"])
        want = int(route_shard_label(namespace, body.get("spec") or {}, self.shards.count))
        if want not in ready:
            # Filed under this shard, but its spec's zone is another shard's: only the
            # zone's holder can remove its Cache Rule. Moved there (unless held here).
            if want not in self.shards.owned():
                await self._move(namespace, name, want)
            return
        if self.clock() < self.retry_at.get(uid, 0.0):
            return
        try:
            await self.finalize(body, log, self.zones)
        except kopf.TemporaryError as exc:
            self.retry_at[uid] = self.clock() + float(exc.delay or INTERVAL_SECONDS)
            log.warning("route %s/%s: deletion waits: %s", namespace, name, exc)
            return
        said = "restored; finalizer removed"
        if await self._write(namespace, name, finalizer_removal(meta), said):
            self.retry_at.pop(uid, None)
