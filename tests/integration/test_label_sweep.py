"""The label sweep on the real API server (``label_sweep``): at a sharded start, before
kopf watches, the routes not filed under a shard yet get their shard label and kopf's
finalizer in one JSON patch guarded by the listed ``resourceVersion``.

What an operator of the fleet relies on: every route ends filed under its spec's shard,
with its other labels and finalizers kept; two replicas sweeping at once write each route
once (the second write is refused by the API server's test of the version, not applied);
a route edited after it was listed, or being deleted, is left for kopf; a sweep out of
time leaves the rest for kopf too."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.controlplane import ControlPlane
from sandbox.prometheus import PrometheusServer
from tests.support import kube
from tests.support import operator as operator_process
from tests.support.objects import apply, budget
from timeout_budget import app
from timeout_budget.clients.kube import Kube, KubeError, load_api_client
from timeout_budget.label_sweep import FIELDS, SweepResult, sweep, sweep_patch
from timeout_budget.model.shards import ROUTE_SHARD_LABEL, route_shard_label
from timeout_budget.route_watch import KOPF_FINALIZER

pytestmark = pytest.mark.integration

SHARDS = 4
KEEP = "example.com/keep"
LAST_HANDLED = "kopf.timeoutbudget.io/last-handled-configuration"
"""kopf's record of the spec it handled (``app.configure_kopf``): absent if kopf never did."""


@pytest.fixture
def sweep_ns(control_plane: ControlPlane) -> Iterator[str]:
    for ns in kube.scratch_namespace(control_plane, "sweep"):
        yield ns
        # Nothing runs kopf here: the finalizers the sweep (and the test) added go.
        for name in routes(control_plane, ns):
            control_plane.kubectl(
                "patch", "tb", name, "-n", ns, "--type=merge",
                "-p", '{"metadata":{"finalizers":null}}', check=False,
            )  # fmt: skip


def routes(cp: ControlPlane, ns: str) -> dict[str, dict[str, Any]]:
    listed = kube.get_json(cp, "tb", "-n", ns)
    return {item["metadata"]["name"]: item for item in listed["items"]}


def kube_client(cp: ControlPlane) -> Kube:
    return Kube(load_api_client(str(cp.kubeconfig)))


def run_sweep(cp: ControlPlane, ns: str, **kwargs: Any) -> SweepResult:
    return asyncio.run(
        sweep(kube_client(cp), SHARDS, app.unlabeled_selector(SHARDS), [ns], **kwargs)
    )


def zoned(name: str, zone: str) -> dict[str, Any]:
    body = budget(name, name)
    body["spec"]["edge"] = {"zoneRef": {"name": zone}, "sync": False}
    return body


def test_two_replicas_sweeping_at_once_file_every_route_once(
    control_plane: ControlPlane, sweep_ns: str
) -> None:
    cp, ns = control_plane, sweep_ns
    bodies = [budget(f"r{i}", f"r{i}") for i in range(10)]
    bodies += [zoned(f"z{i}", f"zone-{i % 3}") for i in range(10)]
    kept = budget("kept", "kept")
    kept["metadata"]["labels"] = {"team": "a", ROUTE_SHARD_LABEL: "7"}  # another count's
    kept["metadata"]["finalizers"] = [KEEP]
    bodies.append(kept)
    going = budget("going", "going")
    going["metadata"]["finalizers"] = [KEEP]
    bodies.append(going)
    apply(cp, ns, *bodies)
    cp.kubectl("delete", "tb", "going", "-n", ns, "--wait=false")
    sweepable = len(bodies) - 1

    async def both() -> list[SweepResult]:
        selector = app.unlabeled_selector(SHARDS)
        return list(
            await asyncio.gather(
                *(sweep(kube_client(cp), SHARDS, selector, [ns], page_size=4) for _ in range(2))
            )
        )

    results = asyncio.run(both())
    print([vars(r) for r in results])
    # Each route written once in all: the other replica's attempt, if it listed the route
    # before the write, was refused by the version test.
    assert sum(r.labeled for r in results) == sweepable
    for r in results:
        assert r.stopped is None
        assert not r.failures
        assert r.listed == r.labeled + r.changed + r.left_to_kopf
        assert r.left_to_kopf == 1  # the route being deleted: kopf's deletion handler

    now = routes(cp, ns)
    for name, item in now.items():
        meta = item["metadata"]
        if name == "going":
            assert ROUTE_SHARD_LABEL not in (meta.get("labels") or {})
            assert meta["finalizers"] == [KEEP]
            continue
        want = route_shard_label(ns, item["spec"], SHARDS)
        assert meta["labels"][ROUTE_SHARD_LABEL] == want, name
        assert KOPF_FINALIZER in meta["finalizers"], name
    assert now["kept"]["metadata"]["labels"]["team"] == "a"
    assert now["kept"]["metadata"]["finalizers"] == [KEEP, KOPF_FINALIZER]
    # Zone routes share their zone's shard, whatever their namespace key's.
    z = {now[f"z{i}"]["metadata"]["labels"][ROUTE_SHARD_LABEL] for i in range(0, 10, 3)}
    assert len(z) == 1

    # Nothing is left for kopf's watch but the route being deleted.
    again = run_sweep(cp, ns)
    assert (again.listed, again.labeled, again.left_to_kopf) == (1, 0, 1)


def test_a_route_edited_after_it_was_listed_is_left_for_kopf(
    control_plane: ControlPlane, sweep_ns: str
) -> None:
    cp, ns = control_plane, sweep_ns
    apply(cp, ns, budget("edited", "edited"))
    client = kube_client(cp)
    items, _, _ = asyncio.run(
        client.list_budgets_page(ns, app.unlabeled_selector(SHARDS), 10, None, FIELDS)
    )
    (item,) = items
    ops = sweep_patch(item, SHARDS)
    assert ops is not None
    cp.kubectl("annotate", "tb", "edited", "-n", ns, "example.com/touched=yes")
    with pytest.raises(KubeError) as refused:
        asyncio.run(client.patch_budget(ns, "edited", ops))
    assert refused.value.status == 422, refused.value
    meta = routes(cp, ns)["edited"]["metadata"]
    assert ROUTE_SHARD_LABEL not in (meta.get("labels") or {})
    assert not meta.get("finalizers")


def test_a_sweep_out_of_time_leaves_the_rest_to_kopf(
    control_plane: ControlPlane, sweep_ns: str
) -> None:
    cp, ns = control_plane, sweep_ns
    apply(cp, ns, *(budget(f"late{i}", f"late{i}") for i in range(3)))
    result = run_sweep(cp, ns, seconds=0.0)
    assert result.stopped is not None
    assert "0s were up" in result.stopped
    assert (result.listed, result.labeled) == (0, 0)
    unlabeled = [
        name
        for name, item in routes(cp, ns).items()
        if ROUTE_SHARD_LABEL not in (item["metadata"].get("labels") or {})
    ]
    assert sorted(unlabeled) == ["late0", "late1", "late2"]


def test_a_sharded_replica_labels_the_routes_already_there_before_kopf_watches(
    control_plane: ControlPlane, prometheus: PrometheusServer, sweep_ns: str
) -> None:
    cp, ns = control_plane, sweep_ns
    apply(cp, ns, *(budget(f"old{i}", f"old{i}") for i in range(3)))
    proc = operator_process.start(
        cp,
        prometheus.url,
        ns,
        "label-sweep",
        env={"TBO_SHARDS": str(SHARDS), "TBO_OPERATOR_NAMESPACE": ns},
    )
    try:
        kube.wait_for(lambda: "label sweep done" in proc.output(), 60, "the sweep's log line")
        assert f"3 routes labeled for {SHARDS} shards" in proc.output()
        new = budget("new", "new")  # created after the start: kopf's, as before
        apply(cp, ns, new)

        def filed() -> dict[str, dict[str, Any]] | None:
            now = routes(cp, ns)
            done = all(
                KOPF_FINALIZER in (item["metadata"].get("finalizers") or [])
                for item in now.values()
            )
            return now if done and len(now) == 4 else None

        now = kube.wait_for(filed, 60, "every route labeled, with kopf's finalizer")
    finally:
        proc.stop()
    for name, item in now.items():
        meta = item["metadata"]
        assert meta["labels"][ROUTE_SHARD_LABEL] == route_shard_label(ns, item["spec"], SHARDS)
        # The sweep labeled the routes that were there; kopf only the one created later.
        handled = LAST_HANDLED in (meta.get("annotations") or {})
        assert handled == (name == "new"), name
