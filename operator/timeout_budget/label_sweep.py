"""Sharded, at start: the routes not filed under a shard yet are labeled before kopf watches.

kopf's TimeoutBudget watch selects the routes without a shard label of this shard count
(``app.unlabeled_selector``), labels each and adds its finalizer, after which the route
leaves its view. On the first sharded start of an existing fleet that is every route, in
every replica at once: kopf then holds a worker, a handler run, a patch and an Event per
route (at 10,005 routes a high-water of ~540 MiB per replica and ~290 s to the first full
cycle, bench/README.md "Sharding and the fast lane").

kopf runs its startup handlers before it starts watching, so the startup handler sweeps
first: it lists the unlabeled routes a page at a time and writes each route's label and
kopf's finalizer in one JSON patch, the route's listed ``resourceVersion`` tested first.
A route changed since it was listed (another replica's sweep labeled it, or a user edited
it) fails that test at the API server without a write and is left as it is; kopf's first
list then finds only what the sweep left:

* routes being deleted (kopf's deletion handler);
* routes a user edited while the sweep ran (those another replica labeled are done);
* all that remain once its time is up (``TBO_LABEL_SWEEP_SECONDS``, 90 s by default; the
  chart's startup probe waits that long plus a minute for kopf to start), or once the API
  server refused a list, or a write for another reason than the test.

As kopf's handler does, the sweep files a route by its raw spec's zone (else namespace)
without validating the rest: a route with a spec the operator refuses is reported
``InvalidSpec`` by its shard's holder.

Several replicas starting together each sweep every page: a route is written once (the
first write changes its ``resourceVersion``), the other replicas' attempts are refused by
the test. Progress is logged a page at a time.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from timeout_budget.clients.kube import Fields, Kube, KubeError, NotFound
from timeout_budget.model.shards import ROUTE_SHARD_LABEL, route_shard_label
from timeout_budget.route_watch import KOPF_FINALIZER, finalizer_addition

log = logging.getLogger("timeout_budget.label_sweep")

SWEEP_SECONDS = 90.0
"""At most this long in the startup handler by default; what is left then is kopf's."""

PAGE_SIZE = 500
IN_FLIGHT = 6
"""Writes in flight (the default thread pool's size on two cores)."""

FIELDS: Fields = {
    "metadata": (
        "name",
        "namespace",
        "resourceVersion",
        "labels",
        "finalizers",
        "deletionTimestamp",
    ),
    "spec": ("edge",),
}
"""What a route's patch is built from (its shard key: ``spec.edge.zoneRef``, else the
namespace)."""


def label_path() -> str:
    """``ROUTE_SHARD_LABEL`` as a JSON pointer below ``/metadata/labels`` (RFC 6901)."""
    return "/metadata/labels/" + ROUTE_SHARD_LABEL.replace("~", "~0").replace("/", "~1")


def sweep_patch(route: Mapping[str, Any], shards: int) -> list[dict[str, Any]] | None:
    """The JSON patch filing ``route`` under its shard and adding kopf's finalizer, applied
    only if the route is still at the listed ``resourceVersion``; None for a route that is
    kopf's to handle (being deleted) or already filed."""
    meta = route.get("metadata") or {}
    spec = route.get("spec") or {}
    if meta.get("deletionTimestamp") or not meta.get("resourceVersion"):
        return None
    labels = meta.get("labels") or {}
    finalizers = list(meta.get("finalizers") or ())
    want = route_shard_label(str(meta.get("namespace")), spec, shards)
    if labels.get(ROUTE_SHARD_LABEL) == want and KOPF_FINALIZER in finalizers:
        return None
    ops: list[dict[str, Any]] = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]}
    ]
    if labels:  # "add" on an existing member replaces it (RFC 6902)
        ops.append({"op": "add", "path": label_path(), "value": want})
    else:
        ops.append({"op": "add", "path": "/metadata/labels", "value": {ROUTE_SHARD_LABEL: want}})
    if KOPF_FINALIZER not in finalizers:
        ops += finalizer_addition(finalizers)
    return ops


@dataclass
class SweepResult:
    listed: int = 0
    labeled: int = 0
    changed: int = 0
    """Changed since listed (another replica labeled them, or an edit): left as they are."""
    left_to_kopf: int = 0
    """Routes being deleted, failed writes, and those listed but not written in time."""
    seconds: float = 0.0
    stopped: str | None = None
    """Why the sweep ended before the last page (None: it did not)."""
    failures: list[str] = field(default_factory=list)


async def sweep(
    kube: Kube,
    shards: int,
    selector: str,
    namespaces: Sequence[str | None],
    seconds: float = SWEEP_SECONDS,
    page_size: int = PAGE_SIZE,
    in_flight: int = IN_FLIGHT,
    clock: Callable[[], float] = time.monotonic,
) -> SweepResult:
    """Label the routes ``selector`` matches in ``namespaces`` (None: the whole cluster)."""
    result = SweepResult()
    started = clock()
    deadline = started + seconds
    limit = asyncio.Semaphore(in_flight)
    order = random.Random()  # replicas starting together take each page in their own order

    async def write(namespace: str, name: str, ops: list[dict[str, Any]]) -> None:
        async with limit:
            if clock() >= deadline:
                result.left_to_kopf += 1
                return
            try:
                await kube.patch_budget(namespace, name, ops)
            except NotFound:
                result.changed += 1  # deleted since
            except KubeError as exc:
                if exc.status == 422:  # the resourceVersion test: changed since listed
                    result.changed += 1
                else:
                    result.left_to_kopf += 1
                    if len(result.failures) < 5:
                        result.failures.append(str(exc))
            else:
                result.labeled += 1

    for namespace in namespaces:
        token: str | None = None
        while True:
            if clock() >= deadline:
                result.stopped = f"its {seconds:.0f}s were up"
                break
            try:
                items, token, left = await kube.list_budgets_page(
                    namespace, selector, page_size, token, FIELDS
                )
            except KubeError as exc:
                result.stopped = f"a list failed: {exc}"
                break
            result.listed += len(items)
            writes = []
            for item in items:
                meta = item.get("metadata") or {}
                ops = sweep_patch(item, shards)
                if ops is None:
                    result.left_to_kopf += 1
                    continue
                writes.append(write(str(meta["namespace"]), str(meta["name"]), ops))
            order.shuffle(writes)
            await asyncio.gather(*writes)
            log.info(
                "label sweep: %d of %s unlabeled routes labeled for %d shards, %d changed "
                "meanwhile, %d left to kopf (%.0fs)",
                result.labeled,
                f"{result.listed + (left or 0):,}",
                shards,
                result.changed,
                result.left_to_kopf,
                clock() - started,
            )
            if token is None:
                break
        if result.stopped:
            break
    result.seconds = clock() - started
    return result
