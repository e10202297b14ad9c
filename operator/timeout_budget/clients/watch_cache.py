"""The origins' objects (Deployments, HPAs, Services) kept current by watches, not re-listed.

Listing every namespace's Deployments, HPAs and Services each cycle costs the API server,
the network and the operator the same work every 15 seconds however little changed: at
10,000 routes about 50 MB of JSON a cycle. This is the informer pattern instead: each kind
is listed once (in pages), then a watch from that list's ``resourceVersion`` streams every
change, and the operator reads its own copy, slimmed to the fields the loop reads.

One thread per kind and scope (the whole cluster, or each namespace the operator serves)
runs the list-then-watch; the event loop only reads. A kind's copy is served only while it
is known to be current:

    syncing  never listed yet: readers wait for the first list (``first_sync_wait``)
    live     listed, and the watch is open (or being reopened after the server ended it)
    broken   a list or watch failed: readers get ``KubeUnavailable`` saying why (the loop
             then holds those routes as they are), and the thread lists afresh after a
             back-off

A watch the server ends normally (``timeout_seconds``) is reopened from the last
``resourceVersion`` seen (bookmarks keep it recent); a 410 Gone lists afresh. The whole
copy is also re-listed every ``relist_seconds`` as a safety net.

**Only the namespaces asked for.** A cluster-wide copy keeps only the namespaces the loop
has routes in (``WatchedLists.serve``, each full cycle), filtered as objects arrive: the
API server cannot select several namespaces in one watch, and a watch per namespace would
be a thread and a connection each. Sharded, a replica thus holds its own shards' origins,
not the fleet's; unsharded, not the Deployments of namespaces without a TimeoutBudget.
A namespace asked for that the copy was not listed with (a new route's, a shard taken
over) is listed in: the watch is closed and the kind listed afresh, and its readers wait
for that list (``first_sync_wait``) as for the first one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

import kubernetes
from kubernetes.client.exceptions import ApiException

from timeout_budget.clients.kube import Fields, KubeUnavailable
from timeout_budget.clients.kube_paths import (
    DEPLOYMENTS,
    HPAS,
    INGRESSES,
    SERVICES,
    KubePaths,
    Resource,
)
from timeout_budget.clients.watch_store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Kind:
    """How to list and watch one kind: its plural and the client's list functions."""

    plural: str
    list_all: Callable[..., Any]
    list_namespaced: Callable[..., Any]

    @classmethod
    def of(cls, paths: KubePaths, resource: Resource) -> Kind:
        """``resource``'s lists and watches, by path (``kube_paths``)."""
        return cls(
            resource.plural,
            partial(paths.list, resource, None),
            partial(paths.list, resource),
        )

    def call(self, namespace: str | None, **kwargs: Any) -> Any:
        if namespace is None:
            return self.list_all(_preload_content=False, **kwargs)
        return self.list_namespaced(namespace, _preload_content=False, **kwargs)


class StoreLike(Protocol):
    """What a ``Watcher`` fills: ``watch_store.Store`` (slimmed dicts) or another keeping
    its own form of each object (``route_watch.SnapshotStore``)."""

    def put(self, obj: Mapping[str, Any]) -> object: ...
    def apply(self, event_type: str, obj: Mapping[str, Any]) -> None: ...
    def in_namespace(self, namespace: str) -> list[Any]: ...
    def retain(self, namespaces: Collection[str]) -> None: ...
    def __len__(self) -> int: ...


class Gone(Exception):
    """410: the watch's resourceVersion is too old; list afresh."""


class Watcher:
    """List-then-watch of one kind in one scope (``namespace=None``: all namespaces), on its
    own daemon thread. ``objects(namespace)`` reads the current copy."""

    def __init__(
        self,
        kind: Kind,
        namespace: str | None,
        fields: Fields,
        annotation_prefix: str | tuple[str, ...] | None = None,
        *,
        page_size: int = 500,
        watch_seconds: int = 240,
        relist_seconds: float = 600.0,
        backoff_seconds: tuple[float, float] = (1.0, 30.0),
        label_selector: str | None = None,
        store_factory: Callable[[], StoreLike] | None = None,
    ) -> None:
        self.kind = kind
        self.label_selector = label_selector
        """Server-side selection (``timeoutbudget.io/shard=3``): only matching objects."""
        self.store_factory = store_factory
        self.namespace = namespace
        self.page_size = page_size
        self.watch_seconds = watch_seconds
        self.relist_seconds = relist_seconds
        self.backoff_seconds = backoff_seconds
        self.fields = fields
        self.annotation_prefix = annotation_prefix
        self._store = self._new_store()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.synced = threading.Event()
        """Set once the first list is in (stays set)."""
        self.problem: str | None = None
        """Why the copy is not current (``broken``), or None while it is."""
        self.events_seen = 0
        self.lists_done = 0
        self._response: Any = None
        self._wanted: frozenset[str] | None = None
        """The namespaces whose objects are kept (None: every one in scope)."""
        self._covered: frozenset[str] | None = frozenset()
        """The wanted namespaces the current copy was listed with (None: every one). Empty
        until the first list: a namespace asked for before it is in is asked for all the
        same (the list may already be under way with the namespaces wanted before)."""
        self._relist = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch-{self.scope}", daemon=True)

    def _new_store(self) -> StoreLike:
        if self.store_factory is not None:
            return self.store_factory()
        return Store(self.fields, self.annotation_prefix)

    @property
    def scope(self) -> str:
        where = f"{self.kind.plural}@{self.namespace or '*'}"
        return f"{where}[{self.label_selector}]" if self.label_selector else where

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        # Wakes the thread blocked reading the stream (the connection may be gone already).
        self._close_watch()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def objects(self, namespace: str) -> list[dict[str, Any]]:
        """The namespace's objects as last seen (read-only), or ``KubeUnavailable``."""
        if not self.synced.is_set():
            why = f": {self.problem}" if self.problem else ""
            raise KubeUnavailable(f"{self.scope}: not listed yet{why}")
        with self._lock:
            if self.problem is not None:
                raise KubeUnavailable(f"{self.scope}: {self.problem}")
            return self._store.in_namespace(namespace)

    def want(self, namespaces: Collection[str] | None) -> None:
        """Keep only these namespaces' objects from now on (None: every namespace). Those
        no longer wanted are dropped at once; one the copy was not listed with is listed in
        (the watch is closed, the kind listed afresh)."""
        wanted = None if namespaces is None else frozenset(namespaces)
        with self._lock:
            if wanted == self._wanted:
                return
            self._wanted = wanted
            if wanted is not None:
                self._store.retain(wanted)
                if self._covered is not None:
                    self._covered &= wanted
            missing = not self._covers(wanted)
        if missing:
            self._relist.set()
            self._close_watch()

    def want_also(self, namespace: str) -> None:
        """Keep this namespace's objects too (listed in if the copy lacks them)."""
        with self._lock:
            wanted = self._wanted
        if wanted is not None and namespace not in wanted:
            self.want(wanted | {namespace})

    def covers(self, namespace: str) -> bool:
        """Whether the copy was listed with this namespace's objects."""
        with self._lock:
            return self._covers(frozenset((namespace,)))

    def _covers(self, namespaces: frozenset[str] | None) -> bool:
        if self._covered is None:
            return True
        return namespaces is not None and namespaces <= self._covered

    def _keeps(self, obj: Mapping[str, Any]) -> bool:
        wanted = self._wanted
        return wanted is None or (obj.get("metadata") or {}).get("namespace") in wanted

    def _close_watch(self) -> None:
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):
                response.shutdown()

    def read(self, reader: Callable[[Any], T]) -> T:
        """``reader(store)`` under the lock (the copy as last seen, current or not)."""
        with self._lock:
            return reader(self._store)

    def size(self) -> int:
        """How many objects the copy holds now."""
        return len(self._store)

    # -- the thread ---------------------------------------------------------------------
    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                version = self._list()
                failures = 0
                listed_at = time.monotonic()
                while not self._stop.is_set() and not self._relist.is_set():
                    version = self._watch(version)
                    if time.monotonic() - listed_at > self.relist_seconds:
                        break  # the safety-net relist
            except Gone:
                log.info("%s: watch expired (410), listing afresh", self.scope)
                continue
            except Exception as exc:  # any failure: say so, back off, relist
                if self._stop.is_set():
                    return
                if self._relist.is_set():
                    continue  # the watch was closed to list new namespaces in
                failures += 1
                self._broken(_describe(exc))
                low, high = self.backoff_seconds
                self._stop.wait(min(high, low * 2 ** (failures - 1)))

    def _broken(self, problem: str) -> None:
        with self._lock:
            if self.problem is None:
                log.warning("%s: copy not current: %s", self.scope, problem)
            self.problem = problem

    def _list(self) -> str:
        """List in pages into a new store, then swap it in; the list's resourceVersion."""
        self._relist.clear()
        with self._lock:
            wanted = self._wanted
        store = self._new_store()
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": self.page_size, **self._selection()}
            if token:
                kwargs["_continue"] = token
            response = self.kind.call(self.namespace, **kwargs)
            page = json.loads(response.data)
            for item in page.get("items", []):
                if wanted is None or (item.get("metadata") or {}).get("namespace") in wanted:
                    store.put(item)
            meta = page.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                version = str(meta.get("resourceVersion", ""))
                break
        with self._lock:
            if self.problem is not None:
                log.info("%s: listed again (%d objects), copy current", self.scope, len(store))
            self._store = store
            self._covered = wanted
            if self._wanted is not None:  # narrowed while listing
                store.retain(self._wanted)
                self._covered = self._wanted if wanted is None else wanted & self._wanted
            self.problem = None
            self.lists_done += 1
        self.synced.set()
        return version

    def _selection(self) -> dict[str, str]:
        return {"label_selector": self.label_selector} if self.label_selector else {}

    def _watch(self, version: str) -> str:
        """Stream changes from ``version`` until the server ends the watch; the last
        version seen. Raises ``Gone`` on 410 and whatever the connection raises."""
        response = self.kind.call(
            self.namespace,
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=self.watch_seconds,
            _request_timeout=(10, self.watch_seconds + 60),
            **self._selection(),
        )
        self._response = response
        ended = False  # the server ended the stream: the connection can be used again
        try:
            if self._relist.is_set() or self._stop.is_set():
                return version  # asked for while the watch was being opened: not shut down
            for event_type, obj in _events(_lines(response)):
                if event_type == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone()
                    raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                meta = obj.get("metadata") or {}
                version = str(meta.get("resourceVersion") or version)
                if event_type != "BOOKMARK":
                    with self._lock:
                        if event_type == "DELETED" or self._keeps(obj):
                            self._store.apply(event_type, obj)
                        self.events_seen += 1
            ended = True
        finally:
            self._response = None
            if not ended:
                # The server is still streaming this watch. Released as it is, the
                # connection would look idle to the pool and carry the next list, whose
                # answer would then be the watch's next chunk (a minute or more later).
                response.close()
            response.release_conn()
        return version


def _lines(response: Any) -> Iterator[bytes]:
    """The watch stream's lines (one event each). Each chunk is scanned once; the client's
    ``iter_resp_lines`` re-slices its whole buffer for every line it yields, which costs
    quadratic time when a chunk carries many events."""
    pending: list[bytes] = []
    for chunk in response.stream(amt=None, decode_content=False):
        data = chunk.encode() if isinstance(chunk, str) else chunk
        start = 0
        while (end := data.find(b"\n", start)) != -1:
            pending.append(data[start:end])
            yield b"".join(pending)
            pending.clear()
            start = end + 1
        if start < len(data):
            pending.append(data[start:])
    if pending:
        yield b"".join(pending)


def _events(lines: Iterable[str | bytes]) -> Iterator[tuple[str, dict[str, Any]]]:
    for line in lines:
        if not line or line.isspace():
            continue
        event = json.loads(line)
        yield str(event.get("type")), event.get("object") or {}


def _describe(exc: Exception) -> str:
    if isinstance(exc, ApiException):
        return f"API server answered {exc.status} {exc.reason or ''}".strip()
    return f"{type(exc).__name__}: {exc}"


class WatchedLists:
    """The loop's namespace lists (the ``list_*`` methods ``observe.cluster`` calls on
    ``Kube``) served from watches. ``namespaces``: the namespaces the operator serves, or
    None for the whole cluster (one watch per kind). The ``fields`` the readers pass are
    the ones the copies were built with (``observe.cluster.FIELDS``): they are not read
    again per call.

    Cluster-wide, the copies keep every namespace until ``serve`` names the ones to keep;
    with ``on_demand`` they keep none until asked (a sharded replica, whose shards are not
    known yet at start)."""

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        fields: Mapping[str, Fields],
        namespaces: Iterable[str] | None = None,
        annotation_prefix: str | tuple[str, ...] | None = None,
        first_sync_wait: float = 30.0,
        on_demand: bool = False,
        **watcher_options: Any,
    ) -> None:
        paths = KubePaths(api_client)
        kinds = {
            resource.plural: Kind.of(paths, resource)
            for resource in (DEPLOYMENTS, HPAS, SERVICES, INGRESSES)
        }
        served = sorted(set(namespaces or ()))
        scopes: list[str | None] = [*served] if served else [None]
        self.first_sync_wait = first_sync_wait
        self.watchers: dict[str, dict[str | None, Watcher]] = {
            plural: {
                ns: Watcher(kind, ns, fields[plural], annotation_prefix, **watcher_options)
                for ns in scopes
            }
            for plural, kind in kinds.items()
        }
        if on_demand:
            self.serve(())

    def start(self) -> None:
        for watcher in self._all():
            watcher.start()

    def stop(self) -> None:
        for watcher in self._all():
            watcher._stop.set()
        for watcher in self._all():
            watcher.stop()

    def _all(self) -> list[Watcher]:
        return [w for by_ns in self.watchers.values() for w in by_ns.values()]

    def serve(self, namespaces: Iterable[str]) -> None:
        """Keep only these namespaces' objects in the cluster-wide copies (the namespaces of
        the routes the loop evaluates); a per-namespace scope keeps its own."""
        wanted = frozenset(namespaces)
        for by_ns in self.watchers.values():
            if None in by_ns:
                by_ns[None].want(wanted)

    def health(self) -> dict[str, tuple[int, bool]]:
        """Per kind: objects held, and whether every scope's copy is current."""
        return {
            plural: (
                sum(w.size() for w in by_ns.values()),
                all(w.synced.is_set() and w.problem is None for w in by_ns.values()),
            )
            for plural, by_ns in self.watchers.items()
        }

    @property
    def events_seen(self) -> int:
        return sum(w.events_seen for w in self._all())

    async def list_deployments(
        self, namespace: str, fields: Fields | None = None
    ) -> list[dict[str, Any]]:
        return await self._objects("deployments", namespace)

    async def list_hpas(self, namespace: str, fields: Fields | None = None) -> list[dict[str, Any]]:
        return await self._objects("horizontalpodautoscalers", namespace)

    async def list_services(
        self, namespace: str, fields: Fields | None = None
    ) -> list[dict[str, Any]]:
        return await self._objects("services", namespace)

    async def list_ingresses(
        self, namespace: str, fields: Fields | None = None
    ) -> list[dict[str, Any]]:
        return await self._objects("ingresses", namespace)

    async def _objects(self, plural: str, namespace: str) -> list[dict[str, Any]]:
        by_ns = self.watchers[plural]
        watcher = by_ns[namespace] if namespace in by_ns else by_ns.get(None)
        if watcher is None:
            raise KubeUnavailable(f"{plural} in {namespace}: not a namespace the operator serves")
        if not watcher.covers(namespace):
            watcher.want_also(namespace)
        if not (watcher.synced.is_set() and watcher.covers(namespace)):
            # Only before the first list, or the list of a namespace new to the copy: the
            # cycle waits for it rather than holding the routes. Polled, so no worker
            # thread is parked on the Event.
            deadline = time.monotonic() + self.first_sync_wait
            while time.monotonic() < deadline and not (
                watcher.synced.is_set() and watcher.covers(namespace)
            ):
                await asyncio.sleep(0.05)
            if watcher.synced.is_set() and not watcher.covers(namespace):
                raise KubeUnavailable(f"{watcher.scope}: {namespace} not listed yet")
        return watcher.objects(namespace)
