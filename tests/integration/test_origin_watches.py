"""The watch-fed copy of the origins' objects against the sandbox's real API server: it
follows creations, scale changes, annotation changes and deletions as they happen, reads
the same as fresh lists, keeps to the namespaces it serves, and says why when it cannot
answer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from sandbox.controlplane import ControlPlane
from tests.support import kube, objects
from tests.support.objects import apply, deployment, service
from timeout_budget.clients.kube import Kube, KubeUnavailable, load_api_client
from timeout_budget.clients.watch_cache import Kind, WatchedLists, Watcher
from timeout_budget.model import ownership
from timeout_budget.model.spec import parse_timeout_budget, route_key
from timeout_budget.observe import cluster

pytestmark = pytest.mark.integration

NS_PREFIX = "watch"

PREFIX = f"{ownership.PREFIX}/"


@pytest.fixture(scope="module")
def other_ns(control_plane: ControlPlane) -> Iterator[str]:
    yield from kube.scratch_namespace(control_plane, "watch-other")


def _client(cp: ControlPlane) -> kubernetes.client.ApiClient:
    return load_api_client(str(cp.kubeconfig))


@pytest.fixture
def everywhere(control_plane: ControlPlane) -> Iterator[WatchedLists]:
    lists = WatchedLists(_client(control_plane), cluster.FIELDS, None, annotation_prefix=PREFIX)
    lists.start()
    yield lists
    lists.stop()


def hpa(name: str, target: str, min_replicas: int) -> dict[str, Any]:
    return objects.hpa(name, target, min_replicas, max_replicas=8, cpu_percent=80)


def read(lists: Any, namespace: str) -> cluster.NamespaceObjects | None:
    return asyncio.run(cluster.read_namespaces(lists, [namespace])).get(namespace)


def replicas(lists: WatchedLists, namespace: str, name: str) -> int | None:
    objects = read(lists, namespace)
    dep = objects.deployments.get(name) if objects else None
    return None if dep is None else int(dep["spec"]["replicas"])


def test_the_copy_follows_changes_as_they_happen(
    control_plane: ControlPlane, ns: str, everywhere: WatchedLists
) -> None:
    cp = control_plane
    apply(cp, ns, deployment("api", 2))  # kubectl apply: a large last-applied annotation
    kube.wait_for(lambda: replicas(everywhere, ns, "api") == 2, 20, "the new Deployment")
    listed = everywhere.watchers["deployments"][None].lists_done

    cp.kubectl("scale", "deployment/api", "--replicas=5", "-n", ns)
    kube.wait_for(lambda: replicas(everywhere, ns, "api") == 5, 20, "the scale change")
    cp.kubectl("annotate", "deployment/api", f"{ownership.BASELINE_REPLICAS}=2", "-n", ns)

    def annotations() -> dict[str, str] | None:
        objects = read(everywhere, ns)
        found = objects.deployments["api"]["metadata"].get("annotations") if objects else None
        return found if found and ownership.BASELINE_REPLICAS in found else None

    seen = kube.wait_for(annotations, 20, "the operator's annotation")
    # Only the operator's annotations are kept (kubectl's last-applied copy is not).
    assert set(seen) == {ownership.BASELINE_REPLICAS}

    objects, current = everywhere.health()["deployments"]
    assert current
    assert objects >= 1
    cp.kubectl("delete", "deployment/api", "-n", ns)
    kube.wait_for(lambda: replicas(everywhere, ns, "api") is None, 20, "the deletion")
    # All of it came through the watch: nothing was listed again.
    assert everywhere.watchers["deployments"][None].lists_done == listed

    assert everywhere.events_seen >= 4


def test_the_copy_reads_the_same_as_fresh_lists(
    control_plane: ControlPlane, ns: str, everywhere: WatchedLists
) -> None:
    cp = control_plane
    apply(cp, ns, deployment("shop", 3))
    apply(cp, ns, hpa("shop", "shop", 3))
    apply(cp, ns, service("shop", {"app": "shop"}))
    key = route_key(ns, "shop")
    spec = parse_timeout_budget(
        {
            "route": {"host": "shop.example.com", "pathPrefix": "/"},
            "latency": {"metric": "http_request_duration_seconds", "selector": {"r": "shop"}},
            "origin": {"deploymentName": "shop", "minReplicas": 2, "maxReplicas": 8},
            "reroute": {"serviceName": "shop", "longRunningSelector": {"app": "shop-long"}},
        }
    )
    fresh = Kube(_client(cp))

    def both_agree() -> cluster.OriginState | None:
        listed, watched = read(fresh, ns), read(everywhere, ns)
        if listed is None or watched is None or "shop" not in watched.services:
            return None
        a, b = cluster.origin_state(key, spec, listed), cluster.origin_state(key, spec, watched)
        return b if a == b and b.scale.hpa is not None else None

    origin = kube.wait_for(both_agree, 20, "the copy to read as the lists do")
    assert origin.scale.spec_replicas == 3
    assert origin.scale.hpa is not None
    assert origin.scale.hpa.min_replicas == 3
    assert origin.service_selector == {"app": "shop"}


def test_served_namespaces_only(control_plane: ControlPlane, ns: str, other_ns: str) -> None:
    """Namespaced (``timeout-budget run -n NS``): one watch per kind and served namespace,
    and a namespace it does not serve is refused, not answered as empty."""
    cp = control_plane
    apply(cp, other_ns, deployment("elsewhere", 1))
    empty = kube.new_namespace(cp, "watch-empty")
    lists = WatchedLists(_client(cp), cluster.FIELDS, [ns, empty], annotation_prefix=PREFIX)
    lists.start()
    try:
        apply(cp, ns, deployment("here", 1))
        kube.wait_for(lambda: replicas(lists, ns, "here") == 1, 20, "the served namespace")
        assert set(lists.watchers["deployments"]) == {ns, empty}
        with pytest.raises(KubeUnavailable, match="not a namespace the operator serves"):
            asyncio.run(lists.list_deployments(other_ns))
        # A served namespace with nothing in it is answered, as empty.
        objects = read(lists, empty)
        assert objects == cluster.NamespaceObjects()
    finally:
        lists.stop()
        cp.kubectl("delete", "namespace", empty, "--wait=false", check=False)


def test_on_demand_the_copy_holds_the_namespaces_asked_for(control_plane: ControlPlane) -> None:
    """Sharded (``on_demand``), the cluster-wide copies hold nothing until a namespace is
    asked for; one asked for is listed in (its objects that existed before are there, not
    only the later ones), the others' are not kept, and ``serve`` drops what is no longer
    the loop's."""
    cp = control_plane
    mine, theirs = kube.new_namespace(cp, "watch-mine"), kube.new_namespace(cp, "watch-theirs")
    apply(cp, mine, deployment("api", 2))
    apply(cp, theirs, deployment("api", 1))
    lists = WatchedLists(
        _client(cp), cluster.FIELDS, None, annotation_prefix=PREFIX, on_demand=True
    )
    lists.start()
    deployments = lists.watchers["deployments"][None]
    try:
        kube.wait_for(deployments.synced.is_set, 20, "the first list")
        assert lists.health()["deployments"][0] == 0  # nothing asked for yet
        assert replicas(lists, mine, "api") == 2  # listed in on demand
        assert lists.health()["deployments"][0] == 1
        apply(cp, theirs, deployment("later", 1))
        apply(cp, mine, deployment("web", 1))
        kube.wait_for(lambda: replicas(lists, mine, "web") == 1, 20, "the watch event")
        assert lists.health()["deployments"][0] == 2  # the other namespace's were not kept

        lists.serve([theirs])  # the loop's routes moved: mine is dropped, theirs listed in
        assert lists.health()["deployments"][0] == 0
        assert replicas(lists, theirs, "api") == 1
        assert replicas(lists, theirs, "later") == 1
        assert lists.health()["deployments"] == (2, True)
    finally:
        lists.stop()
        for namespace in (mine, theirs):
            cp.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_a_namespace_asked_for_while_the_watch_opens_is_listed_in_on_a_fresh_connection(
    control_plane: ControlPlane, caplog: pytest.LogCaptureFixture
) -> None:
    """Asked for between the watch's request and its answer, the watch is given up before
    it is read, while the server goes on streaming it. Its connection must not go back to
    the pool as if idle: the list that follows would be sent on it and read the watch's
    next chunk as its answer (the server's next bookmark, a minute or more later)."""
    cp = control_plane
    mine = kube.new_namespace(cp, "watch-race")
    apply(cp, mine, deployment("api", 2))
    apps = kubernetes.client.AppsV1Api(_client(cp))
    watcher: Watcher | None = None

    def list_all(**kwargs: Any) -> Any:
        response = apps.list_deployment_for_all_namespaces(**kwargs)
        if kwargs.get("watch") and watcher is not None and not watcher.covers(mine):
            watcher.want({mine})  # after the watch's request, before its response is held
        return response

    kind = Kind("deployments", list_all, apps.list_namespaced_deployment)
    watcher = Watcher(kind, None, cluster.DEPLOYMENT_FIELDS, PREFIX)
    watcher.want(())  # as a sharded replica starts: nothing asked for yet
    watcher.start()
    try:
        kube.wait_for(lambda: watcher.covers(mine) or None, 20, "the namespace listed in")
        assert [d["spec"]["replicas"] for d in watcher.objects(mine)] == [2]
        assert watcher.lists_done == 2
        assert watcher.problem is None
        assert not [r for r in caplog.records if "connection broken" in r.getMessage()]
    finally:
        watcher.stop()
        cp.kubectl("delete", "namespace", mine, "--wait=false", check=False)


def test_an_unreachable_api_server_is_unavailable_with_the_reason(
    control_plane: ControlPlane,
) -> None:
    config = kubernetes.client.Configuration()
    config.host = "https://127.0.0.1:9"  # nothing listens on the discard port
    config.verify_ssl = False
    lists = WatchedLists(
        kubernetes.client.ApiClient(config),
        cluster.FIELDS,
        None,
        first_sync_wait=1.0,
        backoff_seconds=(0.2, 0.5),
    )
    lists.start()
    try:
        with pytest.raises(KubeUnavailable, match="not listed yet"):
            asyncio.run(lists.list_deployments("default"))
        kube.wait_for(
            lambda: lists.watchers["deployments"][None].problem, 10, "the reason to be recorded"
        )
        with pytest.raises(KubeUnavailable, match=r"not listed yet: .*(refused|Max retries)"):
            asyncio.run(lists.list_deployments("default"))
        # The loop then holds the namespace's routes: it is absent from what it read.
        assert read(lists, "default") is None
        assert lists.health()["deployments"] == (0, False)
    finally:
        lists.stop()
