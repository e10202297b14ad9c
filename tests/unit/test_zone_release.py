"""Deleting a CloudflareZone that TimeoutBudgets still sync through (issue 16, item 2).

The ``release`` handler is called the way kopf calls it, with the ``budgets`` index
holding entries made by ``cycle.snapshot.snapshot_entry`` (the spec as JSON text, as in the
operator). It used to read that spec as a mapping and fail with ``AttributeError`` on
every retry, so the zone could never be deleted and nobody was told why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from typing import Any
from unittest import mock

import kopf
import pytest

from timeout_budget import zone_handlers
from timeout_budget.cycle.snapshot import RouteSnapshot, snapshot_entry
from timeout_budget.edge import ZoneRegistry
from timeout_budget.model.spec import parse_timeout_budget, route_key

pytestmark = pytest.mark.unit

NS, ZONE = "shop", "edge"
Index = Mapping[tuple[str, str], Collection[RouteSnapshot]]


def tb_body(name: str, *, zone: str | None = ZONE, ns: str = NS, **edge: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "route": {"host": "api.example.com", "pathPrefix": f"/{name}"},
        "latency": {"metric": "http_request_duration_seconds"},
        "origin": {"deploymentName": name},
    }
    if zone is not None:
        spec["edge"] = {"zoneRef": {"name": zone}, **edge}
    return {
        "metadata": {"namespace": ns, "name": name, "uid": f"u-{name}", "generation": 1},
        "spec": spec,
        "status": {},
    }


def index_of(*bodies: dict[str, Any]) -> Index:
    """The ``budgets`` index as kopf hands it: one store of entries per key."""
    entries: dict[tuple[str, str], list[RouteSnapshot]] = {}
    for body in bodies:
        for key, snap in snapshot_entry(body).items():
            entries.setdefault(key, []).append(snap)
    return entries


def release(
    index: Index,
    status: dict[str, Any] | None = None,
    retry: int = 0,
    known: tuple[dict[str, Any], ...] = (),
) -> tuple[BaseException | None, kopf.Patch, list[str]]:
    """One call of the handler: what it raised, the patch it filled, the Warning Events it
    posted. ``known``: TimeoutBudgets the registry saw in a cycle (as the engine shows
    them to it)."""
    patch, warnings = kopf.Patch(), []

    def warn(obj: Any, *, reason: str, message: str = "") -> None:
        """Stands in for ``kopf.warn``, which needs a running operator to post the Event."""
        assert obj["metadata"]["name"] == ZONE
        assert reason == "InUse"
        warnings.append(message)

    memo = kopf.Memo()
    memo.zones = ZoneRegistry(base_url="http://127.0.0.1:9")  # no zone, no request made
    for body in known:
        meta_of = body["metadata"]
        key = route_key(meta_of["namespace"], meta_of["name"])
        memo.zones.observe(meta_of["namespace"], key, parse_timeout_budget(body["spec"]))
    meta = {"namespace": NS, "name": ZONE, "generation": 2}

    async def call() -> None:
        try:
            await zone_handlers.release(
                body={"metadata": meta},
                meta=meta,
                status=status or {},
                patch=patch,
                memo=memo,
                retry=retry,
                budgets=index,
            )
        finally:
            await memo.zones.aclose()

    try:
        with mock.patch.object(kopf, "warn", warn):
            asyncio.run(call())
    except BaseException as exc:  # the outcome under test
        return exc, patch, warnings
    return None, patch, warnings


def test_a_zone_in_use_is_held_with_the_users_named_not_an_attribute_error() -> None:
    index = index_of(tb_body("api"), tb_body("export"), tb_body("other", zone="elsewhere"))
    raised, patch, warnings = release(index)

    assert isinstance(raised, kopf.TemporaryError), repr(raised)
    text = str(raised)
    assert f"TimeoutBudget {NS}/api, {NS}/export" in text
    assert "other" not in text
    status = dict(patch)["status"]
    assert status["message"] == text
    (held,) = [c for c in status["conditions"] if c["type"] == "DeletionBlocked"]
    assert (held["status"], held["reason"], held["message"]) == ("True", "InUse", text)
    assert warnings == [text]  # a Warning Event on the zone


def test_the_hold_is_told_once_and_retried_soon_then_less_often() -> None:
    index = index_of(tb_body("api"))
    first, patch, _ = release(index)
    assert isinstance(first, kopf.TemporaryError)
    shown = dict(patch)["status"]

    again, patch, warnings = release(index, status=shown, retry=1)
    assert isinstance(again, kopf.TemporaryError)
    assert not dict(patch).get("status")  # nothing new to write
    assert warnings == []  # nor to tell again
    assert first.delay is not None
    assert again.delay is not None
    assert first.delay < again.delay <= zone_handlers.RETRY_DELETE_SECONDS
    late, _, _ = release(index, status=shown, retry=30)
    assert isinstance(late, kopf.TemporaryError)
    assert late.delay == zone_handlers.RETRY_DELETE_SECONDS


def test_a_zone_nobody_syncs_through_is_released() -> None:
    index = index_of(
        tb_body("other", zone="elsewhere"),
        tb_body("no-edge", zone=None),
        tb_body("not-synced", sync=False),  # its finalizer needs no token
        tb_body("api", ns="another-namespace"),  # a zoneRef names its own namespace's zone
        {**tb_body("invalid"), "spec": {"edge": {"zoneRef": {"name": ZONE}}}},
    )
    raised, patch, warnings = release(index)
    assert raised is None
    assert not dict(patch).get("status")
    assert warnings == []


def test_a_budget_being_deleted_still_holds_the_zone_until_its_finalizer_is_done() -> None:
    """The index drops a TimeoutBudget once it is being deleted; the registry still knows
    the route until its finalizer has removed its Cache Rule with the zone's token."""
    deleting = tb_body("api")
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    raised, _, _ = release(index_of(deleting), known=(deleting,))
    assert isinstance(raised, kopf.TemporaryError)
    assert f"TimeoutBudget {NS}/api:" in str(raised)
    assert release(index_of(deleting))[0] is None  # finalizer done: the registry forgot it
