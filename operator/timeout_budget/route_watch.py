"""The TimeoutBudgets the loop evaluates, kept current by list-then-watch on their own threads.

The loop reads every route each cycle from this copy, never from the API server: each
TimeoutBudget is kept as a ``RouteSnapshot`` (``cycle.snapshot``: the spec as compact JSON
text, the status with shared keys), by the same ``Watcher`` that keeps the origins'
objects (``clients.watch_cache``: paged list, watch from its resourceVersion, 410 lists
afresh, a safety-net relist).

Why not a kopf index: kopf makes every object of an indexed resource wait until the whole
resource is indexed, and each object's arrival wakes every waiting one. With 10,000
existing TimeoutBudgets a replica spent over two minutes of CPU at startup before its first
cycle (bench/README.md, "Sharding"). A plain watch has no such wait.

**Sharded** (``TBO_SHARDS=N``), a replica keeps only the routes of the shards it holds:
every TimeoutBudget carries its shard in the label ``timeoutbudget.io/shard`` (set by the
``handlers.validate`` handler of any replica, from ``model.shards``), and the replica opens
one watch per held shard with that label selected server-side, closing it when the shard
moves away. A shard is evaluated only once its watch has listed it (``ready``): a
half-listed shard could look like a zone whose routes were deleted.

A new or changed spec (a new generation) wakes the loop (``wake``), so it is evaluated at
once rather than at the next interval.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import kubernetes

from timeout_budget.clients.kube import TIMEOUTBUDGETS
from timeout_budget.clients.kube_paths import KubePaths
from timeout_budget.clients.watch_cache import Kind, Watcher
from timeout_budget.cycle.snapshot import RouteSnapshot, snapshot_entry
from timeout_budget.model.shards import ROUTE_SHARD_LABEL

log = logging.getLogger(__name__)

Key = tuple[str, str]
"""(namespace, name)"""


KOPF_FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"
"""The finalizer kopf puts on every TimeoutBudget (set in ``app.configure_kopf``: kopf's
default name, so routes finalized before keep working; the operator's deletion handler
runs before it is removed). Sharded, the holder of a labeled route's shard removes it
(``shard_upkeep``)."""


def finalizer_addition(finalizers: Collection[str]) -> list[dict[str, Any]]:
    """A JSON patch adding kopf's finalizer to the route's (others' are kept)."""
    if not finalizers:
        return [{"op": "add", "path": "/metadata/finalizers", "value": [KOPF_FINALIZER]}]
    return [
        {"op": "test", "path": "/metadata/finalizers", "value": list(finalizers)},
        {"op": "add", "path": "/metadata/finalizers/-", "value": KOPF_FINALIZER},
    ]


class SnapshotStore:
    """One watch's TimeoutBudgets as ``RouteSnapshot``s by (namespace, name). Filled by the
    list (``put``), kept current by the watch's events (``apply``); ``changed`` is called
    for an event that brings a new object or a new spec generation. A route being deleted
    has no snapshot (``snapshot_entry``): its finalizer restores what it changed. While
    it still carries kopf's finalizer, its metadata and spec are kept in ``deleting``; a
    route without that finalizer is in ``unfinalized`` (sharded, the holder adds it)."""

    def __init__(self, changed: Callable[[], None] = lambda: None) -> None:
        self.snapshots: dict[Key, RouteSnapshot] = {}
        self.deleting: dict[Key, dict[str, Any]] = {}
        self.unfinalized: dict[Key, list[str]] = {}
        self.changed = changed

    def put(self, obj: Mapping[str, Any]) -> bool:
        """Keep the object's snapshot; True when its spec is new to this store."""
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        before = self.snapshots.pop(key, None)
        finalizers = meta.get("finalizers") or ()
        self.deleting.pop(key, None)
        self.unfinalized.pop(key, None)
        if meta.get("deletionTimestamp"):
            if KOPF_FINALIZER in finalizers:
                self.deleting[key] = {
                    "metadata": {
                        k: meta[k] for k in ("namespace", "name", "uid", "finalizers") if k in meta
                    },
                    "spec": obj.get("spec") or {},
                }
            return False
        if KOPF_FINALIZER not in finalizers:
            self.unfinalized[key] = list(finalizers)
        for snap in snapshot_entry(obj).values():
            self.snapshots[key] = snap
            return before is None or before.generation != snap.generation
        return False

    def apply(self, event_type: str, obj: Mapping[str, Any]) -> None:
        if event_type in ("ADDED", "MODIFIED"):
            if self.put(obj):
                self.changed()
        elif event_type == "DELETED":
            meta = obj.get("metadata") or {}
            key = (str(meta.get("namespace")), str(meta.get("name")))
            self.snapshots.pop(key, None)
            self.deleting.pop(key, None)
            self.unfinalized.pop(key, None)

    def in_namespace(self, namespace: str) -> list[RouteSnapshot]:
        return [s for s in self.snapshots.values() if s.namespace == namespace]

    def retain(self, namespaces: Collection[str]) -> None:
        """Drop the routes of every other namespace."""
        for kept in (self.snapshots, self.deleting, self.unfinalized):
            for key in [key for key in kept if key[0] not in namespaces]:
                del kept[key]

    def all(self) -> list[RouteSnapshot]:
        return list(self.snapshots.values())

    def being_deleted(self) -> list[dict[str, Any]]:
        return list(self.deleting.values())

    def without_finalizer(self) -> list[tuple[Key, list[str]]]:
        return sorted(self.unfinalized.items())

    def __len__(self) -> int:
        return len(self.snapshots)


def timeoutbudgets(api_client: kubernetes.client.ApiClient) -> Kind:
    return Kind.of(KubePaths(api_client), TIMEOUTBUDGETS)


def shard_selector(shard: int) -> str:
    return f"{ROUTE_SHARD_LABEL}={shard}"


class RouteWatch:
    """Every TimeoutBudget the operator serves (``namespaces``; None: the whole cluster),
    or, once ``follow`` is called (sharded), those of the shards followed.

    ``wake`` is called from a watch thread when a route is new or its spec changed."""

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        namespaces: Iterable[str] | None = None,
        wake: Callable[[], None] = lambda: None,
        **watcher_options: Any,
    ) -> None:
        self.kind = timeoutbudgets(api_client)
        served = sorted(set(namespaces or ()))
        self.scopes: list[str | None] = [*served] if served else [None]
        self.wake = wake
        self.options = watcher_options
        self._lock = threading.Lock()
        self.watchers: dict[int | None, list[Watcher]] = {}
        """By shard (None: unsharded, every route)."""

    def _watchers(self, shard: int | None) -> list[Watcher]:
        selector = None if shard is None else shard_selector(shard)
        return [
            Watcher(
                self.kind,
                ns,
                {},
                label_selector=selector,
                store_factory=lambda: SnapshotStore(self.wake),
                **self.options,
            )
            for ns in self.scopes
        ]

    def start(self) -> None:
        """Unsharded: watch every route."""
        self.follow([None])

    def follow(self, shards: Collection[int | None]) -> None:
        """Watch exactly these shards' routes: open the new ones' watches, close the others'.
        Blocking (a closed watch's thread is joined): call it off the event loop."""
        with self._lock:
            gone = [s for s in self.watchers if s not in shards]
            new = [s for s in shards if s not in self.watchers]
            stopped = [w for s in gone for w in self.watchers.pop(s)]
            for shard in new:
                self.watchers[shard] = self._watchers(shard)
                for watcher in self.watchers[shard]:
                    watcher.start()
        for watcher in stopped:
            watcher._stop.set()
        for watcher in stopped:
            watcher.stop()
        if gone or (new and new != [None]):
            log.info("watching the routes of shards %s", sorted(s for s in shards if s is not None))

    def stop(self) -> None:
        self.follow([])

    def ready(self) -> frozenset[int | None]:
        """The shards (None: unsharded) whose routes are all listed."""
        with self._lock:
            return frozenset(
                s for s, ws in self.watchers.items() if all(w.synced.is_set() for w in ws)
            )

    def snapshots(self, shards: Collection[int | None] | None = None) -> list[RouteSnapshot]:
        """The routes of ``shards`` (default: all followed), as last seen."""
        with self._lock:
            picked = [
                w for s, ws in self.watchers.items() if shards is None or s in shards for w in ws
            ]
        out: list[RouteSnapshot] = []
        for watcher in picked:
            out.extend(watcher.read(SnapshotStore.all))
        return out

    def size(self) -> int:
        with self._lock:
            return sum(w.size() for ws in self.watchers.values() for w in ws)

    def items(self) -> list[tuple[Key, list[RouteSnapshot]]]:
        """As a kopf index reads (``zone_handlers``): each route's key and its snapshot."""
        return [((s.namespace, s.name), [s]) for s in self.snapshots()]

    def _held(self, shards: Collection[int]) -> list[tuple[int, Watcher]]:
        with self._lock:
            return [
                (s, w)
                for s, ws in self.watchers.items()
                if s is not None and s in shards
                for w in ws
            ]

    def filed(self, shards: Collection[int]) -> list[tuple[int, RouteSnapshot]]:
        """Sharded: each route of ``shards`` with the shard its label files it under."""
        return [(s, snap) for s, w in self._held(shards) for snap in w.read(SnapshotStore.all)]

    def being_deleted(self, shards: Collection[int]) -> list[dict[str, Any]]:
        """Sharded: the routes of ``shards`` being deleted that still carry kopf's finalizer
        (metadata and spec)."""
        return [b for _, w in self._held(shards) for b in w.read(SnapshotStore.being_deleted)]

    def without_finalizer(self, shards: Collection[int]) -> list[tuple[Key, list[str]]]:
        """Sharded: the live routes of ``shards`` that lack kopf's finalizer (with the
        finalizers they carry)."""
        return [k for _, w in self._held(shards) for k in w.read(SnapshotStore.without_finalizer)]
