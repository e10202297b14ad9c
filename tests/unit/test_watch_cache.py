"""The watch-fed copy of the origins' objects: what it keeps, and when it refuses to answer.

The list and watch answers below are the bytes the API server sends (a list page as JSON, a
watch as one JSON event per line), read by the real client code that parses them; the
functions that would send the requests are replaced (no server: a unit test). The same copy
against the real API server is tested in tests/integration/test_origin_watches.py.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from timeout_budget.clients.kube import KubeUnavailable
from timeout_budget.clients.watch_cache import Kind, WatchedLists, Watcher, _events, _lines
from timeout_budget.clients.watch_store import Store
from timeout_budget.model import ownership
from timeout_budget.observe import chain, cluster

pytestmark = pytest.mark.unit

PREFIX = f"{ownership.PREFIX}/"


def deployment(name: str, replicas: int, ns: str = "shop", **annotations: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": ns,
            "resourceVersion": "1",
            "annotations": annotations,
            "managedFields": [{"manager": "kubectl"}] * 5,
        },
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "c"}]}}},
        "status": {"readyReplicas": replicas},
    }


def test_store_keeps_the_fields_the_loop_reads_and_only_the_operators_annotations() -> None:
    store = Store(cluster.DEPLOYMENT_FIELDS, PREFIX)
    big = "x" * 10_000
    store.put(
        deployment(
            "api",
            3,
            **{
                ownership.BASELINE_REPLICAS: "2",
                "kubectl.kubernetes.io/last-applied-configuration": big,
            },
        )
    )
    (item,) = store.in_namespace("shop")
    assert item == {
        "metadata": {
            "name": "api",
            "namespace": "shop",
            "annotations": {ownership.BASELINE_REPLICAS: "2"},
        },
        "spec": {"replicas": 3},
        "status": {"readyReplicas": 3},
    }


def test_store_keeps_every_prefix_it_is_given() -> None:
    store = Store(cluster.INGRESS_FIELDS, (PREFIX, *chain.ANNOTATIONS_READ))
    ingress = {
        "metadata": {
            "name": "api",
            "namespace": "shop",
            "annotations": {
                "nginx.ingress.kubernetes.io/proxy-read-timeout": "300",
                "kubernetes.io/ingress.class": "nginx",
                "kubectl.kubernetes.io/last-applied-configuration": "x" * 1000,
            },
        },
        "spec": {"rules": [{"host": "api.example.com"}], "tls": []},
    }
    store.put(ingress)
    (item,) = store.in_namespace("shop")
    assert item["metadata"]["annotations"] == {
        "nginx.ingress.kubernetes.io/proxy-read-timeout": "300",
        "kubernetes.io/ingress.class": "nginx",
    }
    assert item["spec"] == {"rules": [{"host": "api.example.com"}]}


def test_store_keeps_an_empty_annotations_map_apart_from_none() -> None:
    """Reroute adds ``/metadata/annotations`` only when the object has none: an object whose
    annotations are all someone else's must still show that it has the map."""
    store = Store(cluster.SERVICE_FIELDS, PREFIX)
    store.put({"metadata": {"name": "a", "namespace": "n", "annotations": {"team": "x"}}})
    store.put({"metadata": {"name": "b", "namespace": "n"}})
    by_name = {o["metadata"]["name"]: o for o in store.in_namespace("n")}
    assert by_name["a"]["metadata"]["annotations"] == {}
    assert "annotations" not in by_name["b"]["metadata"]


def test_store_applies_watch_events() -> None:
    store = Store(cluster.DEPLOYMENT_FIELDS, PREFIX)
    store.apply("ADDED", deployment("api", 2))
    store.apply("ADDED", deployment("web", 1))
    store.apply("ADDED", deployment("api", 5, ns="other"))
    store.apply("MODIFIED", deployment("api", 4))
    store.apply("DELETED", deployment("web", 1))
    store.apply("DELETED", deployment("api", 5, ns="other"))
    assert [(o["metadata"]["name"], o["spec"]["replicas"]) for o in store.in_namespace("shop")] == [
        ("api", 4)
    ]
    assert store.in_namespace("other") == []
    assert len(store) == 1


def test_watch_lines_become_events_and_blank_lines_are_skipped() -> None:
    lines = [json.dumps({"type": "ADDED", "object": deployment("api", 1)}), "", "  "]
    lines.append(json.dumps({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}}))
    assert [t for t, _ in _events(lines)] == ["ADDED", "BOOKMARK"]


class _Chunks:
    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks

    def stream(self, amt: Any = None, decode_content: bool = False) -> Iterator[bytes]:
        yield from self.chunks


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 10_000])
def test_stream_lines_whatever_the_chunks(size: int) -> None:
    events = [json.dumps({"type": "MODIFIED", "object": deployment(f"d{i}", i)}) for i in range(9)]
    body = ("\n".join(events) + "\n").encode()
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    assert [line.decode() for line in _lines(_Chunks(*chunks))] == events


def test_a_last_line_without_newline_is_kept() -> None:
    assert list(_lines(_Chunks(b'{"a":1}\n{"b"', b":2}"))) == [b'{"a":1}', b'{"b":2}']


# -- the watcher's thread, against scripted API answers ---------------------------------


class _Response:
    """The client's raw response (``_preload_content=False``): ``.data`` for a list, a
    byte stream for a watch (read by the client's own ``iter_resp_lines``).

    A watch's response holds its connection like urllib3's: released back to the pool
    while the server still streams (neither ended, closed nor shut down), the connection
    looks idle and carries the next list, whose answer is then the watch's next chunk
    (``_Api.list_all`` waits for it)."""

    def __init__(
        self, body: bytes, hold: threading.Event | None = None, api: _Api | None = None
    ) -> None:
        self.data = body
        self.hold = hold
        self.api = api
        self.ended = False  # the server ended the stream
        self.closed = False  # closed or shut down: the pool drops the connection

    def stream(self, amt: Any = None, decode_content: bool = False) -> Iterator[bytes]:
        # A watch arrives in chunks that do not line up with events.
        for start in range(0, len(self.data), 7):
            yield self.data[start : start + 7]
        if self.hold is not None:
            self.hold.wait(5)  # an open watch with nothing more to say
        self.ended = True

    def release_conn(self) -> None:
        if self.api is not None and not (self.ended or self.closed):
            self.api.pooled_open_watch = True

    def shutdown(self) -> None:
        self.closed = True
        if self.hold is not None:
            self.hold.set()

    def close(self) -> None:
        self.shutdown()


class _Api:
    """Answers lists and watches from a script; records what was asked."""

    def __init__(self) -> None:
        self.items = [deployment("api", 2)]
        self.version = 10
        self.watches: list[list[dict[str, Any]] | int | Exception] = []
        self.calls: list[dict[str, Any]] = []
        self.lists_served = 0
        self.relists_allowed = threading.Event()
        self.relists_allowed.set()
        self.hold = threading.Event()
        self.pooled_open_watch = False
        """A watch's connection went back to the pool while its stream was open."""

    def list_all(self, **kwargs: Any) -> _Response:
        self.calls.append(kwargs)
        if kwargs.get("watch"):
            script = self.watches.pop(0) if self.watches else []
            if isinstance(script, Exception):
                raise script
            if isinstance(script, int):
                events = [{"type": "ERROR", "object": {"code": script, "message": "too old"}}]
                return _Response("\n".join(json.dumps(e) for e in events).encode() + b"\n")
            body = "".join(json.dumps(e) + "\n" for e in script).encode()
            return _Response(body, self.hold if not self.watches else None, self)
        if self.pooled_open_watch:  # sent on the open watch's connection
            self.pooled_open_watch = False
            time.sleep(3)  # its answer: the watch's next chunk; urllib3 then retries
        if self.lists_served and not self.relists_allowed.is_set():
            raise ConnectionRefusedError("connection refused")
        self.lists_served += 1
        page = {"metadata": {"resourceVersion": str(self.version)}, "items": self.items}
        return _Response(json.dumps(page).encode())

    def list_namespaced(self, namespace: str, **kwargs: Any) -> _Response:
        return self.list_all(**kwargs)


def _watcher(api: _Api) -> Watcher:
    kind = Kind("deployments", api.list_all, api.list_namespaced)
    return Watcher(kind, None, cluster.DEPLOYMENT_FIELDS, PREFIX, backoff_seconds=(0.01, 0.05))


def _until(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + 5
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _replicas(watcher: Watcher) -> dict[str, int]:
    return {o["metadata"]["name"]: o["spec"]["replicas"] for o in watcher.objects("shop")}


def test_watcher_lists_then_follows_the_watch_from_the_lists_version() -> None:
    api = _Api()
    api.watches = [
        [
            {"type": "MODIFIED", "object": deployment("api", 4)},
            {"type": "ADDED", "object": deployment("web", 1)},
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "17"}}},
        ],
        [{"type": "DELETED", "object": deployment("web", 1)}],
    ]
    watcher = _watcher(api)
    watcher.start()
    try:
        _until(lambda: watcher.events_seen == 3, "three events")
        assert _replicas(watcher) == {"api": 4}
        first, second = (c for c in api.calls if c.get("watch"))
        assert first["resource_version"] == "10"  # from the list
        assert second["resource_version"] == "17"  # resumed from the bookmark
        assert first["allow_watch_bookmarks"] is True
        assert watcher.lists_done == 1
    finally:
        watcher.stop()


def test_watcher_lists_afresh_on_410_gone() -> None:
    api = _Api()
    api.watches = [410, []]
    watcher = _watcher(api)
    watcher.start()
    try:
        _until(lambda: watcher.lists_done == 2, "a second list")
        assert watcher.problem is None
    finally:
        watcher.stop()


def test_a_broken_watch_refuses_to_answer_until_listed_again() -> None:
    api = _Api()
    api.watches = [ConnectionResetError("reset by peer")]
    api.relists_allowed.clear()  # the API server is gone after the first list
    watcher = _watcher(api)
    watcher.start()
    try:
        _until(lambda: watcher.problem is not None, "the copy marked broken")
        with pytest.raises(KubeUnavailable, match=r"deployments@\*: .*(reset by peer|refused)"):
            watcher.objects("shop")
        _until(lambda: sum(not c.get("watch") for c in api.calls) >= 3, "relists tried")
        with pytest.raises(KubeUnavailable):
            watcher.objects("shop")  # still broken while the lists fail
        api.relists_allowed.set()  # the API server answers again
        _until(lambda: watcher.problem is None, "a fresh list")
        assert _replicas(watcher) == {"api": 2}
    finally:
        watcher.stop()


def test_not_listed_yet_is_unavailable_not_empty() -> None:
    """Before the first list, an empty answer would read as "Deployment not found" for
    every route; the copy says it is not listed yet instead."""
    api = _Api()
    watcher = _watcher(api)  # not started
    with pytest.raises(KubeUnavailable, match="not listed yet"):
        watcher.objects("shop")


def test_stop_ends_an_open_watch_at_once() -> None:
    api = _Api()
    api.watches = [[{"type": "MODIFIED", "object": deployment("api", 3)}]]
    watcher = _watcher(api)
    watcher.start()
    _until(lambda: watcher.events_seen == 1, "the event")
    started = time.monotonic()
    watcher.stop()
    assert not watcher._thread.is_alive()
    assert time.monotonic() - started < 4  # the open watch holds 5 s unless shut down


# -- only the namespaces asked for ----------------------------------------------------


def test_store_retain_drops_every_other_namespace() -> None:
    store = Store(cluster.DEPLOYMENT_FIELDS, PREFIX)
    for ns in ("shop", "blog", "mail"):
        store.put(deployment("api", 1, ns=ns))
    store.retain({"blog"})
    assert len(store) == 1
    assert store.in_namespace("shop") == []
    assert len(store.in_namespace("blog")) == 1
    store.put(deployment("web", 1, ns="blog"))
    assert {o["metadata"]["name"] for o in store.in_namespace("blog")} == {"api", "web"}


def test_watcher_keeps_only_the_namespaces_wanted_from_list_and_watch() -> None:
    api = _Api()
    api.items = [deployment("api", 2), deployment("api", 2, ns="blog")]
    api.watches = [
        [
            {"type": "ADDED", "object": deployment("web", 1, ns="blog")},
            {"type": "ADDED", "object": deployment("web", 1)},
        ]
    ]
    watcher = _watcher(api)
    watcher.want({"shop"})
    watcher.start()
    try:
        _until(lambda: watcher.events_seen == 2, "two events")
        assert _replicas(watcher) == {"api": 2, "web": 1}
        assert watcher.objects("blog") == []
        assert watcher.size() == 2
        assert watcher.covers("shop")
        assert not watcher.covers("blog")
    finally:
        watcher.stop()


def test_a_namespace_wanted_later_is_listed_in_and_one_dropped_is_forgotten() -> None:
    """The copy never listed ``blog``'s objects: asking for it closes the open watch and
    lists the kind afresh, so the objects that saw no event since are there too."""
    api = _Api()
    api.items = [deployment("api", 2), deployment("api", 3, ns="blog")]
    api.watches = [[], []]  # the second watch stays open until closed
    watcher = _watcher(api)
    watcher.want({"shop"})
    watcher.start()
    try:
        _until(lambda: watcher.lists_done == 1 and len(api.calls) >= 2, "the watch open")
        watcher.want({"shop", "blog"})
        _until(lambda: watcher.covers("blog"), "blog listed in")
        assert watcher.lists_done == 2
        assert watcher.problem is None
        assert [o["spec"]["replicas"] for o in watcher.objects("blog")] == [3]
        watcher.want({"blog"})  # shop's routes moved away: its objects go at once
        assert watcher.objects("shop") == []
        assert watcher.size() == 1
        assert not watcher.covers("shop")
        assert watcher.lists_done == 2
    finally:
        watcher.stop()


def test_a_namespace_asked_for_while_the_watch_opens_is_listed_in_at_once() -> None:
    """Asked for between the watch's request and its answer, there is no response to shut
    down yet: the watch must not then stay open (minutes) before listing it in, and its
    connection, the server still streaming on it, must not carry the list (seen on the
    real API server: tests/integration/test_origin_watches.py failed so)."""
    api = _Api()
    api.items = [deployment("api", 2), deployment("api", 3, ns="blog")]
    api.watches = [[]]  # the watch stays open until closed (up to 5 s here)
    watcher = _watcher(api)
    watcher.want({"shop"})
    opened = api.list_all

    def list_all(**kwargs: Any) -> _Response:
        response = opened(**kwargs)
        if kwargs.get("watch") and not watcher.covers("blog"):
            watcher.want({"shop", "blog"})  # after the request, before the response is held
        return response

    watcher.kind = Kind("deployments", list_all, api.list_namespaced)
    watcher.start()
    try:
        started = time.monotonic()
        _until(lambda: watcher.covers("blog"), "blog listed in")
        assert time.monotonic() - started < 2  # not after the open watch's 5 s
        assert [o["spec"]["replicas"] for o in watcher.objects("blog")] == [3]
    finally:
        watcher.stop()


def test_a_namespace_asked_for_during_the_first_list_is_listed_in() -> None:
    """Sharded, the copy starts wanting no namespace, and the loop may ask for one while the
    first list (of none) is still under way. That list does not cover it, so another must
    follow at once; the reader waits for it, not its whole ``first_sync_wait`` for nothing.
    (Seen on the real API server: tests/integration/test_origin_watches.py failed so.)"""
    api = _Api()
    api.items = [deployment("api", 2)]
    api.watches = [[], []]
    first_list, listing = threading.Event(), threading.Event()
    asked = api.list_all

    def list_all(**kwargs: Any) -> _Response:
        if not kwargs.get("watch") and not first_list.is_set():
            listing.set()
            first_list.wait(5)  # the first list is under way until the reader has asked
        return asked(**kwargs)

    watcher = Watcher(
        Kind("deployments", list_all, api.list_namespaced),
        None,
        cluster.DEPLOYMENT_FIELDS,
        PREFIX,
        backoff_seconds=(0.01, 0.05),
    )
    lists = WatchedLists(kubernetes.client.ApiClient(), cluster.FIELDS, None, first_sync_wait=3)
    lists.watchers = {"deployments": {None: watcher}}
    lists.serve(())  # as ``on_demand`` does: nothing wanted yet
    assert not watcher.covers("shop")
    watcher.start()
    try:
        _until(listing.is_set, "the first list under way")
        threading.Timer(0.3, first_list.set).start()
        started = time.monotonic()
        objects = asyncio.run(lists.list_deployments("shop"))
        assert [o["spec"]["replicas"] for o in objects] == [2]
        assert time.monotonic() - started < 2  # not the whole 3 s wait, then refused
        assert watcher.lists_done == 2  # the first (of nothing), then shop's
    finally:
        watcher.stop()
